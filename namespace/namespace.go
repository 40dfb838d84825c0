// Package namespace owns the tree as the user sees it: what a name means (an object, a directory,
// a shadowed file, a file being written, a control file) and how every change lands in the store.
//
// It imports cache, stage and store, never go-fuse: package fusefs translates
// kernel requests into calls on Dir, File and Handle, their errors into errno
// values through one table (Errno), and their attributes as Show decides
// them. Everything here is testable without /dev/fuse.
package namespace

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Errors of the namespace's own decisions. Store errors (store.ErrNotFound,
// store.ErrExists...) and staging's ENOSPC come through wrapped; Errno
// maps both to errno values in one table.
var (
	ErrReadOnly     = errors.New("read-only mount")                        // EROFS
	ErrInvalid      = errors.New("invalid name or request")                // EINVAL
	ErrExist        = errors.New("name exists")                            // EEXIST
	ErrNotEmpty     = errors.New("directory not empty")                    // ENOTEMPTY
	ErrCrossDevice  = errors.New("rename across buckets or too large")     // EXDEV
	ErrBusy         = errors.New("file in the directory is being written") // EBUSY
	ErrNotWriter    = errors.New("handle not open for writing")            // EBADF
	ErrNotSupported = errors.New("operation not supported here")           // ENOTSUP
)

// Config says how the namespace changes the store.
type Config struct {
	// Writer and Staging make the namespace writable: changes are staged
	// in Staging and uploaded with Writer. With either nil every change
	// fails with ErrReadOnly. Writer is the cache's (cache.Cache.Writer),
	// which keeps the cache true; Staging must upload with that same
	// writer. Any other is wrapped (Cache.Keeps) for the namespace's own
	// requests.
	Writer  store.Writer
	Staging *stage.Area
	// AllowDelete lets the namespace delete objects it did not write
	// itself (--allow-delete); without it such deletes fail with
	// ErrNotPermitted (deleteguard.go).
	AllowDelete bool
	// Reserved is the name of the control directory (control.go) at the
	// mount's root (NS.Root): Lookup finds it, the root's listing leaves
	// it out, and no unlink, rmdir or rename may take or give it
	// (ErrNotPermitted). "" makes none.
	Reserved string
	// Identities, if set, makes the namespace one of many identities
	// (identity.go): it names the writer of each change from its request's
	// context, or fails (EACCES) for a caller without an identity. It
	// resolves the caller once per request: the context it returns carries
	// the resolution to the cache's Scope and to later calls (an already
	// resolved context is returned as it is).
	Identities func(ctx context.Context) (context.Context, Identity, error)
	Logger     *slog.Logger
	// Now is the clock (mtimes of files being written); nil is time.Now.
	Now func() time.Time
}

// NS is the namespace of one mount. It is safe for concurrent use.
type NS struct {
	cfg     Config
	cache   *cache.Cache
	w       *cache.Keeper // Config.Writer, kept by the cache; nil: read-only
	log     *slog.Logger
	hidden  sync.Map     // bucket/key of names already logged as hidden
	writes  writes       // files being written (write.go)
	deletes *deleteGuard // which deletes are allowed (deleteguard.go)
}

// New returns the namespace over c.
func New(c *cache.Cache, cfg Config) *NS {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ns := &NS{cfg: cfg, cache: c, log: cfg.Logger, deletes: newDeleteGuard(cfg.AllowDelete, DefaultOwnedMax, cfg.Logger)}
	if cfg.Writer != nil {
		ns.w = c.Keeps(cfg.Writer)
	}
	return ns
}

// Writable reports whether changes are allowed.
func (ns *NS) Writable() bool { return ns.w != nil && ns.cfg.Staging != nil }

// requestContext bounds one metadata request with the cache's timeout.
func (ns *NS) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, ns.cache.Config().RequestTimeout)
}

// Ino gives a stable inode number to a name of a given kind. Directories
// keep theirs for the life of the mount; a file's depends on the version
// too (see FileIno).
func Ino(bucket, key string, dir bool) uint64 {
	h := fnv64(fnvOffset)
	h.str(bucket)
	h.byte(0)
	h.str(key)
	if dir {
		h.byte(1)
	}
	return h.ino()
}

// FileIno is the inode number of one version of an object. Each version is
// its own inode: the kernel keeps one size and one page cache per inode, so
// two versions sharing one would let a reader of either see the other's
// length. Open descriptors keep the inode they opened; a name looked up
// after a change gets the new inode. A version is its ETag and size (plus,
// for servers that send no ETag, its time to the second, which a listing
// and a HEAD agree on). It is Ino(bucket, key+"\x00"+version, false),
// hashed without building that string (one per LOOKUP of a file).
func FileIno(bucket string, o store.Object) uint64 {
	var buf [24]byte
	h := fnv64(fnvOffset)
	h.str(bucket)
	h.byte(0)
	h.str(o.Key)
	h.byte(0)
	h.str(o.ETag)
	h.byte(0)
	h.bytes(strconv.AppendInt(buf[:0], o.Size, 10))
	if o.ETag == "" {
		h.byte(0)
		h.bytes(strconv.AppendInt(buf[:0], o.ModTime.Unix(), 10))
	}
	return h.ino()
}

// fnv64 is 64-bit FNV-1a (hash/fnv's New64a), fed strings without copying
// them into a []byte.
type fnv64 uint64

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (h *fnv64) byte(b byte) { *h = (*h ^ fnv64(b)) * fnvPrime }

func (h *fnv64) str(s string) {
	for i := 0; i < len(s); i++ {
		h.byte(s[i])
	}
}

func (h *fnv64) bytes(b []byte) {
	for _, c := range b {
		h.byte(c)
	}
}

// ino stays below go-fuse's automatic range (2^63 and up) and above the root.
func (h fnv64) ino() uint64 { return uint64(h)>>1 | 2 }

// newIno is the inode number of a file created by this mount: unique, so
// it never meets the inode of an object's version.
func (ns *NS) newIno(bucket, key string) uint64 {
	return Ino(bucket, key+"\x00created\x00"+strconv.FormatUint(ns.writes.seq.Add(1), 10), false)
}
