// Package fs is the FUSE adapter of bucketfs: go-fuse nodes that translate
// kernel requests into calls on the cache and back into attributes, entries
// and errno values. It holds no caching or S3 logic of its own.
package fs

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/internal/watchdog"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Config says what to show and how.
type Config struct {
	// Bucket is the one bucket to show at the root; "" shows every bucket
	// as a directory of the root.
	Bucket string
	// Prefix is the key prefix shown at the root of a one-bucket mount;
	// "" or ending in "/".
	Prefix string
	// UID, GID, FileMode and DirMode are the owner and permission bits
	// every file and directory gets.
	UID, GID          uint32
	FileMode, DirMode uint32
	// MountTime is the mtime of directories (S3 has none for prefixes).
	MountTime time.Time
	Logger    *slog.Logger
	// Writer and Staging make the mount read-write (write.go): changes
	// are staged in Staging and uploaded with Writer. With either nil
	// every change is refused with EROFS.
	Writer  store.Writer
	Staging *stage.Area
	// AllowDelete lets the mount delete objects it did not write itself
	// (--allow-delete); without it such deletes fail with EPERM
	// (deleteguard.go). The guard asks Writer, which must then also be a
	// store.ObjectStore, for an object's current ETag.
	AllowDelete bool
	// Status, if set, makes the control directory ControlDir at the root
	// (control.go): it is called at each open of one of its files, and
	// returns the mount's status for people and as JSON.
	Status func() (text, json []byte)
	// Tracker, if set, is told of every request in flight (inflight.go).
	Tracker *watchdog.Tracker
	// PlusFiles bounds the file inodes held by the kernel beyond which a
	// directory read (READDIRPLUS) passes files as names only; 0 means
	// DefaultPlusFiles. Each file a directory read gives attributes
	// becomes an inode that the kernel and go-fuse keep (~450 bytes here)
	// until the kernel forgets it, which it does only under memory
	// pressure: without a bound, a find over a million objects pins a
	// million. Past it a stat costs one LOOKUP, answered from the cached
	// listing; while such LOOKUPs come (ls -l, ls -lR: every name passed
	// gets an inode anyway), directory reads give attributes again.
	PlusFiles int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultPlusFiles is Config.PlusFiles when zero.
const DefaultPlusFiles = 100_000

// statWindow is how long after the kernel last looked up a file by name
// directory reads past Config.PlusFiles still give files' attributes.
const statWindow = time.Second

// plusFile reports whether a directory read should give the kernel the
// attributes of a file along with its name (see Config.PlusFiles).
func (f *FS) plusFile() bool {
	if f.fileInodes.Load() < int64(f.cfg.PlusFiles) {
		return true
	}
	return f.cfg.Now().UnixNano()-f.fileLookupAt.Load() < int64(statWindow)
}

// FS holds what every node shares.
type FS struct {
	cfg    Config
	cache  *cache.Cache
	log    *slog.Logger
	hidden sync.Map // bucket/key of names already logged as hidden

	panics   atomic.Int64 // requests that panicked, for the log
	panicked sync.Map     // operations whose panic stack was logged

	writes  writes       // files being written (write.go)
	deletes *deleteGuard // which deletes are allowed (deleteguard.go)

	fileInodes   atomic.Int64 // file inodes the kernel holds (see Config.PlusFiles)
	fileLookupAt atomic.Int64 // when the kernel last looked a file up by name, Unix nanoseconds
}

// New returns the root node for cfg over c.
func New(c *cache.Cache, cfg Config) gofs.InodeEmbedder {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MountTime.IsZero() {
		cfg.MountTime = time.Now()
	}
	if cfg.PlusFiles <= 0 {
		cfg.PlusFiles = DefaultPlusFiles
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &FS{cfg: cfg, cache: c, log: cfg.Logger}
	f.deletes = newDeleteGuard(cfg.AllowDelete, DefaultOwnedMax, cfg.Logger)
	if cfg.Bucket == "" {
		return &bucketsNode{fs: f}
	}
	return &dirNode{fs: f, bucket: cfg.Bucket, at: cfg.Prefix}
}

// Options returns the go-fuse options that match the cache's TTLs: the
// kernel keeps entries and attributes as long as the cache trusts them.
func Options(c *cache.Cache) *gofs.Options {
	cc := c.Config()
	entry, neg := cc.MetadataTTL, cc.NegativeTTL
	return &gofs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &entry,
		NegativeTimeout: &neg,
	}
}

// ino gives a stable inode number to a name of a given kind. Directories
// keep theirs for the life of the mount; a file's depends on the version too
// (see fileIno).
func ino(bucket, key string, dir bool) uint64 {
	h := fnv.New64a()
	h.Write([]byte(bucket))
	h.Write([]byte{0})
	h.Write([]byte(key))
	if dir {
		h.Write([]byte{1})
	}
	// Stay below go-fuse's automatic range (2^63 and up) and above the root.
	return h.Sum64()>>1 | 2
}

// fileIno is the inode number of one version of an object. Each version is
// its own inode: the kernel keeps one size and one page cache per inode, so
// two versions sharing one would let a reader of either see the other's
// length (a new version cut at the old size, or an old reader cut short by
// a new, smaller one). Open descriptors keep the inode they opened; a name
// looked up after a change gets the new inode. A version is its ETag and
// size (plus, for servers that send no ETag, its time to the second, which
// a listing and a HEAD agree on).
func fileIno(bucket string, o store.Object) uint64 {
	v := o.ETag + "\x00" + strconv.FormatInt(o.Size, 10)
	if o.ETag == "" {
		v += "\x00" + strconv.FormatInt(o.ModTime.Unix(), 10)
	}
	return ino(bucket, o.Key+"\x00"+v, false)
}

// toErrno maps store sentinels to errno, the one place this happens.
func toErrno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, store.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, store.ErrAccessDenied), errors.Is(err, store.ErrAuth):
		return syscall.EACCES
	case errors.Is(err, store.ErrChanged):
		return syscall.ESTALE
	case errors.Is(err, store.ErrUnsupported):
		return syscall.ENOTSUP
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	default:
		return syscall.EIO
	}
}

// fail logs err (unless it is an ordinary "no such file") and maps it.
func (f *FS) fail(op, bucket, key string, err error) syscall.Errno {
	e := toErrno(err)
	if e != syscall.ENOENT && e != syscall.EINTR {
		f.log.Warn("request failed", "op", op, "bucket", bucket, "key", key, "errno", e.Error(), "err", err)
	}
	return e
}

func (f *FS) dirAttr(out *fuse.Attr, bucket, key string) {
	f.dirAttrOf(out, ino(bucket, key, true), f.cfg.DirMode)
}

// dirAttrOf fills the attributes every directory shares, with its own
// inode number and permissions.
func (f *FS) dirAttrOf(out *fuse.Attr, ino uint64, perm uint32) {
	out.Mode = syscall.S_IFDIR | perm
	out.Ino = ino
	out.Nlink = 2
	out.Size = 4096
	out.Blksize = 4096
	out.Owner = fuse.Owner{Uid: f.cfg.UID, Gid: f.cfg.GID}
	t := f.cfg.MountTime
	out.SetTimes(&t, &t, &t)
}

func (f *FS) fileAttr(out *fuse.Attr, bucket string, o store.Object) {
	out.Mode = syscall.S_IFREG | f.cfg.FileMode
	out.Ino = fileIno(bucket, o)
	out.Nlink = 1
	out.Size = uint64(o.Size)
	out.Blocks = (uint64(o.Size) + 511) / 512
	out.Blksize = 1 << 20
	out.Owner = fuse.Owner{Uid: f.cfg.UID, Gid: f.cfg.GID}
	t := o.ModTime
	out.SetTimes(&t, &t, &t)
}

// newDir and newFile make (or find, by inode number) child inodes.
func (f *FS) newDir(ctx context.Context, parent *gofs.Inode, bucket, prefix string) *gofs.Inode {
	key := prefix[:max(len(prefix)-1, 0)]
	return parent.NewInode(ctx, &dirNode{fs: f, bucket: bucket, at: prefix},
		gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(bucket, key, true)})
}

// newFile also fills out with the file's attributes: those of the inode
// already known under name in parent, when it is this version. One inode
// must never show the kernel other attributes: a listing gives times to
// the millisecond and HEAD to the second, and a time that changes makes
// the kernel drop the inode's cached pages inside the LOOKUP or
// READDIRPLUS, holding the directory's lock while it waits for every read
// of the file in flight.
func (f *FS) newFile(ctx context.Context, parent *gofs.Inode, bucket, name string, o store.Object, out *fuse.Attr) *gofs.Inode {
	id := fileIno(bucket, o)
	if ch := parent.GetChild(name); ch != nil && ch.StableAttr().Ino == id {
		if n, ok := ch.Operations().(*fileNode); ok && n.ov.Load() == nil && n.obj.ETag == o.ETag {
			o.ModTime = n.obj.ModTime
		}
	}
	f.fileAttr(out, bucket, o)
	n := &fileNode{fs: f, bucket: bucket, key: o.Key, obj: o}
	ch := parent.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: id})
	if ch.Operations() == n && n.counted.CompareAndSwap(false, true) {
		f.fileInodes.Add(1) // a new inode, not one the kernel already had
	}
	return ch
}

// Statfs reports a large, read-only file system so df and free-space
// checks in tools do not refuse to work.
func statfs(out *fuse.StatfsOut) {
	const blocks = 1 << 40
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = blocks
	out.Bfree = blocks
	out.Bavail = blocks
	out.Files = 1 << 40
	out.Ffree = 1 << 40
	out.NameLen = 255
}
