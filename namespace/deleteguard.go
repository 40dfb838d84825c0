package namespace

import (
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
)

// The delete guard. A read-write mount of every bucket is also a way to
// destroy every bucket: one stray "rm -rf" (a clean-up script that meets a
// leftover mount, a recursive unlink on the wrong path) deletes object
// after object, with no undo. So by default the mount deletes only what it
// wrote itself: objects it uploaded, directory markers it made and the
// copies its renames made, each while it still has the ETag the mount got
// back (an object someone else replaced since is theirs again). Every
// other delete (an unlink, an rmdir of a directory marker, the delete half
// of a rename) is refused with EPERM, unless the mount was made with
// --allow-delete. Overwriting is not a delete and is not guarded.
//
// The namespace asks it before it deletes (deletecheck.go) and tells it
// what it wrote (uploads, markers, the copies of renames) and removed. On
// a mount of many identities it remembers who wrote what (who, the
// owner's key, identity.go): each user deletes only what they wrote.

// DefaultOwnedMax is how many objects a mount remembers having written:
// beyond it the oldest are forgotten, and deleting them needs
// --allow-delete. Each costs about 80 bytes (two 64-bit hashes and a
// slot, with the map's overhead): 8 MB at most.
const DefaultOwnedMax = 100_000

// deleteGuard decides which deletes the mount makes.
type deleteGuard struct {
	allow bool // --allow-delete: every delete is allowed
	log   *slog.Logger
	own   ownedSet

	warned  atomic.Bool  // the hint was logged
	refused atomic.Int64 // deletes refused so far
}

func newDeleteGuard(allow bool, max int, log *slog.Logger) *deleteGuard {
	g := &deleteGuard{allow: allow, log: log}
	g.own.init(max)
	return g
}

// wrote records that the mount made (bucket, key) and got etag back.
func (g *deleteGuard) wrote(who, bucket, key, etag string) {
	if g.allow {
		return // nothing to remember: every delete is allowed
	}
	if etag == "" {
		// Nothing to recognise it by later: it counts as existing.
		g.own.forget(who, bucket, key)
		g.log.Debug("delete guard: the server sent no ETag; this object counts as existing", "bucket", bucket, "key", key)
		return
	}
	g.own.add(who, bucket, key, etag)
}

// removed records that (bucket, key) is gone.
func (g *deleteGuard) removed(who, bucket, key string) {
	if !g.allow {
		g.own.forget(who, bucket, key)
	}
}

// mayDelete reports whether the object (bucket, key), which now has etag,
// may be deleted: always with --allow-delete, else only if this mount
// wrote it and it still has the ETag the mount got back.
func (g *deleteGuard) mayDelete(who, bucket, key, etag string) bool {
	return g.allow || g.own.has(who, bucket, key, etag)
}

// mine reports whether the mount remembers writing (bucket, key) at all,
// whatever its ETag: whether it is worth asking the server for the
// current one.
func (g *deleteGuard) mine(who, bucket, key string) bool {
	return g.allow || g.own.known(who, bucket, key)
}

// refuse counts a refused delete and logs it: the first with the hint at
// warning level, the rest at debug level, so an "rm -rf" of a large tree
// says once how to lift the guard and does not flood the log.
func (g *deleteGuard) refuse(op, bucket, key, why string) {
	n := g.refused.Add(1)
	if g.warned.CompareAndSwap(false, true) {
		g.log.Warn("delete refused (Operation not permitted): this mount deletes only what it wrote itself; "+
			"to delete other objects, mount with --allow-delete (fstab option allow_delete)",
			"op", op, "bucket", bucket, "key", key, "why", why)
		return
	}
	g.log.Debug("delete refused", "op", op, "bucket", bucket, "key", key, "why", why, "refused", n)
}

// ownedSet is the bounded registry of what the mount wrote: a hash of
// bucket and key to a hash of the ETag, forgetting the oldest entry when
// full. Hashes, not strings, keep an entry at about 80 bytes whatever the
// key's length; two different objects (or ETags) share a 64-bit hash with
// a chance of about 2^-64, and a wrong match needs both.
type ownedSet struct {
	mu   sync.Mutex
	seed maphash.Seed
	max  int
	m    map[uint64]ownedEntry // by hash of bucket and key
	// ring holds the key hashes in the order they were added (slot
	// seq % max); an entry is evicted when its slot comes round again
	// and it was not added anew since.
	ring []uint64
	seq  uint64
}

type ownedEntry struct {
	etag uint64 // hash of the ETag
	seq  uint64 // when it was added: its slot in ring
}

func (s *ownedSet) init(max int) {
	if max <= 0 {
		max = DefaultOwnedMax
	}
	s.seed = maphash.MakeSeed()
	s.max = max
	s.m = map[uint64]ownedEntry{}
}

func (s *ownedSet) keyHash(who, bucket, key string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(who)
	h.WriteByte(0)
	h.WriteString(bucket)
	h.WriteByte(0)
	h.WriteString(key)
	return h.Sum64()
}

func (s *ownedSet) etagHash(etag string) uint64 {
	return maphash.String(s.seed, etag)
}

func (s *ownedSet) add(who, bucket, key, etag string) {
	k, e := s.keyHash(who, bucket, key), s.etagHash(etag)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := int(s.seq % uint64(s.max))
	if slot < len(s.ring) {
		// The slot's previous occupant goes, unless it was added again
		// since (then its newer slot owns it).
		old := s.ring[slot]
		if o, ok := s.m[old]; ok && o.seq+uint64(s.max) == s.seq {
			delete(s.m, old)
		}
		s.ring[slot] = k
	} else {
		s.ring = append(s.ring, k)
	}
	s.m[k] = ownedEntry{etag: e, seq: s.seq}
	s.seq++
}

func (s *ownedSet) forget(who, bucket, key string) {
	k := s.keyHash(who, bucket, key)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

func (s *ownedSet) has(who, bucket, key, etag string) bool {
	k, e := s.keyHash(who, bucket, key), s.etagHash(etag)
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[k]
	return ok && o.etag == e
}

func (s *ownedSet) known(who, bucket, key string) bool {
	k := s.keyHash(who, bucket, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	return ok
}

func (s *ownedSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
