package namespace

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// Dir is a directory: a bucket's root (prefix "") or a common prefix.
type Dir struct {
	ns     *NS
	bucket string
	at     string // the prefix it was made for: "" or ending in "/"
	// moved is the prefix it has had since a rename of it or of a
	// directory above it: the kernel may keep using it under the new name
	// until its old entries are dropped.
	moved   atomic.Pointer[string]
	root    bool // the mount's root (NS.Root)
	control bool // the control directory (control.go)
}

// Dir returns the directory prefix ("" or ending in "/") of bucket.
func (ns *NS) Dir(bucket, prefix string) *Dir {
	return &Dir{ns: ns, bucket: bucket, at: prefix}
}

// Root returns the directory prefix of bucket as the mount's root, where
// Config.Reserved is kept. Bucket "" is the root of a mount of every
// bucket: one directory per bucket, which makes and removes none
// (ErrNotSupported; a create is ErrReadOnly, a rename to it ErrCrossDevice).
// Config.Reserved there is the control directory (control.go).
func (ns *NS) Root(bucket, prefix string) *Dir {
	d := ns.Dir(bucket, prefix)
	d.root = true
	return d
}

// Reserved reports whether name is Config.Reserved: at the root of a
// mount of every bucket, and in Root.
func (ns *NS) Reserved(name string) bool { return name != "" && name == ns.cfg.Reserved }

// Reserved reports whether name in d is Config.Reserved (d is the root).
func (d *Dir) Reserved(name string) bool { return d.root && d.ns.Reserved(name) }

// Bucket is the directory's bucket.
func (d *Dir) Bucket() string { return d.bucket }

// Prefix is the directory's prefix: "" or ending in "/".
func (d *Dir) Prefix() string {
	if p := d.moved.Load(); p != nil {
		return *p
	}
	return d.at
}

// Key is the directory's key: its prefix without the "/".
func (d *Dir) Key() string { return strings.TrimSuffix(d.Prefix(), "/") }

// Ino is the directory's inode number; the root of every bucket is 1, as
// the root of every mount.
func (d *Dir) Ino() uint64 {
	if d.control {
		return ControlIno("")
	}
	if d.bucket == "" {
		return 1
	}
	return Ino(d.bucket, d.Key(), true)
}

// Entry is what a name in a directory refers to: Dir, File or Control
// is set.
type Entry struct {
	Name    string
	Dir     *Dir
	File    *File
	Control *ControlFile
}

// Ino is the entry's inode number.
func (e Entry) Ino() uint64 {
	switch {
	case e.Dir != nil:
		return e.Dir.Ino()
	case e.Control != nil:
		return e.Control.Ino()
	}
	return e.File.Ino()
}

func (d *Dir) child(name string) *Dir { return d.ns.Dir(d.bucket, d.Prefix()+name+"/") }

// Lookup resolves one name: a file being written, an object, a directory,
// or for a name ending in ShadowSuffix that is not a key itself, the
// object hidden by a directory of the same name.
func (d *Dir) Lookup(ctx context.Context, name string) (Entry, error) {
	if d.Reserved(name) {
		return Entry{Name: name, Dir: d.ns.controlDir()}, nil
	}
	if d.control {
		c, ok := Control(name)
		if !ok {
			return Entry{}, store.ErrNotFound
		}
		return Entry{Name: name, Control: &c}, nil
	}
	if d.bucket == "" {
		b, err := d.ns.Bucket(ctx, name)
		return Entry{Name: name, Dir: b}, err
	}
	if !usable(name) {
		return Entry{}, store.ErrNotFound
	}
	// The caller, resolved once: for the files being written and the cache.
	ctx, id, err := d.ns.caller(ctx)
	if err != nil {
		return Entry{}, err
	}
	key := d.Prefix() + name
	if w := d.ns.writes.get(id.Key, d.bucket, key); w != nil {
		return Entry{Name: name, File: d.ns.fileOf(w)}, nil
	}
	n, err := d.ns.cache.Lookup(ctx, d.bucket, key)
	if err != nil && strings.HasSuffix(name, ShadowSuffix) && isNotFound(err) {
		base := strings.TrimSuffix(key, ShadowSuffix)
		if bn, berr := d.ns.cache.Lookup(ctx, d.bucket, base); berr == nil && bn.Kind.Has(cache.KindFile|cache.KindDir) {
			return Entry{Name: name, File: d.ns.objectFile(d.bucket, bn.Object)}, nil
		}
	}
	if err != nil {
		return Entry{}, err
	}
	if n.Kind.Has(cache.KindDir) {
		return Entry{Name: name, Dir: d.child(name)}, nil
	}
	return Entry{Name: name, File: d.ns.objectFile(d.bucket, n.Object)}, nil
}

// fileKey is the key of the file a name shows: the name itself, or for
// "x" + ShadowSuffix that is not a key of its id, the object "x" that a
// directory "x" hides.
func (d *Dir) fileKey(ctx context.Context, name string) string {
	key := d.Prefix() + name
	if !strings.HasSuffix(name, ShadowSuffix) || d.ns.writes.get(d.ns.identityKey(ctx), d.bucket, key) != nil {
		return key
	}
	if n, err := d.ns.cache.Lookup(ctx, d.bucket, key); err == nil && n.Kind.Has(cache.KindFile) {
		return key
	}
	base := strings.TrimSuffix(key, ShadowSuffix)
	if n, err := d.ns.cache.Lookup(ctx, d.bucket, base); err == nil && n.Kind.Has(cache.KindFile|cache.KindDir) {
		return base
	}
	return key
}

// Lister walks one directory as a reader asks for entries: the listing
// (pages fetched only as needed), usable names only, a file hidden by a
// directory of the same name last under its shadow name, and last the
// files being written here that the listing does not hold yet (created
// and not uploaded, or whose upload failed). It is not safe for
// concurrent use.
type Lister struct {
	d     *Dir
	r     *cache.DirReader
	queue []cache.DirEntry // the file halves of names that are both, shown after everything else
	// taken holds the names ending in ShadowSuffix that real keys gave
	// this directory; the shadowed files come last, so all are known by
	// then (a listing from the server and one from the cache do not
	// order "x", "x.bucketfs-file" and "x/" alike).
	taken  map[string]bool
	staged map[string]*wfile // files being written here, not listed (yet)
	done   bool              // the listing is exhausted: only the queue is left
	// found says staged holds the files being written of the reader of
	// the first Next since the start (they are its alone, identity.go).
	found bool
	// listed, for the control directory and the root of every bucket,
	// is the whole list, made at the first Next; the walk is at
	// listed[next].
	listed []Entry
	next   int
}

// List starts a walk of d.
func (d *Dir) List() *Lister {
	l := &Lister{d: d}
	l.Rewind()
	return l
}

// Rewind starts the walk again from the first entry.
func (l *Lister) Rewind() {
	if l.d.bucket == "" {
		l.next = 0 // the same list again (the control directory too)
		return
	}
	l.r = nil // made by the first Next, for the identity of its context
	l.queue, l.taken, l.done = nil, nil, false
	l.staged, l.found = nil, false
}

// findStaged gathers the files being written in the directory by the
// caller of ctx.
func (l *Lister) findStaged(ctx context.Context) {
	d := l.d
	l.found = true
	prefix := d.Prefix()
	for _, w := range d.ns.writes.under(d.ns.identityKey(ctx), d.bucket, prefix) {
		_, key := w.name()
		name := key[len(prefix):]
		if strings.Contains(name, "/") || !w.pending() {
			continue
		}
		if l.staged == nil {
			l.staged = map[string]*wfile{}
		}
		l.staged[name] = w
	}
}

// Next returns the next entry; ok is false at the end.
func (l *Lister) Next(ctx context.Context) (_ Entry, ok bool, _ error) {
	d := l.d
	if d.bucket == "" {
		return l.nextListed(ctx)
	}
	ctx, _, err := d.ns.caller(ctx) // once for the request: the cache's scope reads it
	if err != nil {
		return Entry{}, false, err
	}
	if !l.found {
		l.findStaged(ctx)
	}
	for {
		var e cache.DirEntry
		shadow := false
		if !l.done {
			var ok bool
			var err error
			if l.r == nil {
				if l.r, err = d.ns.cache.ReadDir(ctx, d.bucket, d.Prefix()); err != nil {
					return Entry{}, false, err
				}
			}
			e, ok, err = l.r.Next(ctx)
			if err != nil {
				return Entry{}, false, err
			}
			l.done = !ok
		}
		if l.done {
			if len(l.queue) == 0 {
				return l.nextStaged()
			}
			e, l.queue, shadow = l.queue[0], l.queue[1:], true
		}
		key := d.Prefix() + e.Name
		if !usable(e.Name) {
			d.ns.Hide(d.bucket, key, whyUnusable(e.Name))
			continue
		}
		if d.Reserved(e.Name) {
			d.ns.Hide(d.bucket, key, "the mount root's "+e.Name+" is reserved for bucketfs (its control directory)")
			continue
		}
		if !shadow && strings.HasSuffix(e.Name, ShadowSuffix) {
			if l.taken == nil {
				l.taken = map[string]bool{}
			}
			l.taken[e.Name] = true
		}
		switch {
		case shadow:
			name := e.Name + ShadowSuffix
			if len(name) > maxName {
				d.ns.Hide(d.bucket, key, "shadowed by a directory and name too long for the suffix")
				continue
			}
			if l.taken[name] {
				d.ns.Hide(d.bucket, key, "shadowed by a directory, and a real key has the name "+name)
				continue
			}
			return Entry{Name: name, File: d.ns.objectFile(d.bucket, e.Object)}, true, nil
		case e.Kind.Has(cache.KindDir):
			if e.Kind.Has(cache.KindFile) {
				l.queue = append(l.queue, e)
			}
			return Entry{Name: e.Name, Dir: d.child(e.Name)}, true, nil
		default:
			if w := l.staged[e.Name]; w != nil {
				delete(l.staged, e.Name)
				return Entry{Name: e.Name, File: d.ns.fileOf(w)}, true, nil
			}
			return Entry{Name: e.Name, File: d.ns.objectFile(d.bucket, e.Object)}, true, nil
		}
	}
}

// nextStaged yields the files being written that the listing did not
// show, in name order.
func (l *Lister) nextStaged() (Entry, bool, error) {
	if len(l.staged) == 0 {
		return Entry{}, false, nil
	}
	names := make([]string, 0, len(l.staged))
	for n := range l.staged {
		names = append(names, n)
	}
	sort.Strings(names)
	w := l.staged[names[0]]
	delete(l.staged, names[0])
	return Entry{Name: names[0], File: l.d.ns.fileOf(w)}, true, nil
}

// Buckets lists the names of the buckets that can be shown.
func (ns *NS) Buckets(ctx context.Context) ([]string, error) {
	bs, err := ns.cache.Buckets(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(bs))
	for _, bk := range bs {
		if usable(bk.Name) {
			names = append(names, bk.Name)
		}
	}
	return names, nil
}

// nextListed walks the control directory (its files) or the root of
// every bucket (each usable bucket, as its root directory), listed once,
// at the first call.
func (l *Lister) nextListed(ctx context.Context) (Entry, bool, error) {
	switch {
	case l.listed != nil:
	case l.d.control:
		for _, c := range ControlFiles {
			l.listed = append(l.listed, Entry{Name: c.Name, Control: &c})
		}
	default:
		names, err := l.d.ns.Buckets(ctx)
		if err != nil {
			return Entry{}, false, err
		}
		l.listed = make([]Entry, 0, len(names))
		for _, name := range names {
			l.listed = append(l.listed, Entry{Name: name, Dir: l.d.ns.Dir(name, "")})
		}
	}
	if l.next == len(l.listed) {
		return Entry{}, false, nil
	}
	l.next++
	return l.listed[l.next-1], true, nil
}

// Bucket finds a bucket by name. Buckets that ListBuckets does not return
// (no s3:ListAllMyBuckets) are still reachable: a one-key LIST says
// whether the bucket exists and may be read.
func (ns *NS) Bucket(ctx context.Context, name string) (*Dir, error) {
	if !validBucketName(name) {
		return nil, store.ErrNotFound
	}
	if bs, err := ns.cache.Buckets(ctx); err == nil {
		for _, bk := range bs {
			if bk.Name == name {
				return ns.Dir(name, ""), nil
			}
		}
	}
	if err := ns.cache.CheckBucket(ctx, name); err != nil {
		return nil, err
	}
	return ns.Dir(name, ""), nil
}
