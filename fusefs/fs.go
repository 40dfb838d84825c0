// Package fusefs owns the kernel's side of a mount: go-fuse nodes that turn each request
// into one namespace call, and its answer into attributes, entries, inodes and errno values.
package fusefs

import (
	"context"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/internal/forget"
	"github.com/bucketfs/bucketfs/internal/watchdog"
	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Config says what to show and how.
type Config struct {
	// Bucket is the one bucket shown at the root ("": every bucket, each a
	// directory), from Prefix ("" or ending in "/") on.
	Bucket, Prefix string
	// The owner and permission bits of every file and directory.
	UID, GID          uint32
	FileMode, DirMode uint32
	// CallerOwns shows every request its caller as the owner (a
	// per-user mount: namespace.Owner), but for the root, which all
	// users share.
	CallerOwns bool
	// MountTime is the mtime of directories (S3 has none for prefixes).
	MountTime time.Time
	Logger    *slog.Logger
	// Writer, Staging and AllowDelete are the namespace's
	// (namespace.Config); with Writer or Staging nil, changes fail (EROFS).
	Writer  store.Writer
	Staging *stage.Area
	// Identities, if set, makes each change its caller's: one mount of
	// many identities (namespace.Config.Identities).
	Identities  func(ctx context.Context) (context.Context, namespace.Identity, error)
	AllowDelete bool
	// Status, if set, makes the control directory (namespace.ControlDir):
	// it gives the status for people and as JSON at each open.
	Status func() (text, json []byte)
	// Tracker, if set, is told of every request in flight (op.go).
	Tracker *watchdog.Tracker
	// PlusFiles bounds the file inodes the kernel holds (0:
	// DefaultPlusFiles; each costs ~450 bytes until the kernel forgets it,
	// which it does only under memory pressure). Past it, directory reads
	// pass files as names only unless files are being looked up by name
	// (plusFile), and the kernel is asked to forget the least recently
	// given files not in use (package forget).
	PlusFiles int
	// Context bounds the background work (forgetting inodes); nil: never
	// cancelled.
	Context context.Context
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultPlusFiles is Config.PlusFiles when zero.
const DefaultPlusFiles = 100_000

// statWindow is how long after a file was last looked up by name
// directory reads past Config.PlusFiles still give files' attributes.
const statWindow = time.Second

// plusFile reports whether a directory read gives a file's attributes.
func (f *FS) plusFile() bool {
	if f.fileInodes.Load() < int64(f.cfg.PlusFiles) {
		return true
	}
	return f.cfg.Now().UnixNano()-f.fileLookupAt.Load() < int64(statWindow)
}

// FS holds what every node shares.
type FS struct {
	cfg Config
	ns  *namespace.NS
	log *slog.Logger

	guard watchdog.Guard // every request's (op.go)

	fileInodes   atomic.Int64 // file inodes the kernel holds (see Config.PlusFiles)
	fileLookupAt atomic.Int64 // when the kernel last looked a file up by name, Unix nanoseconds
	kept         *forget.LRU[*fileNode]
}

// New returns the root node for cfg over c.
func New(c *cache.Cache, cfg Config) fs.InodeEmbedder {
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
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	nc := namespace.Config{Writer: cfg.Writer, Staging: cfg.Staging, AllowDelete: cfg.AllowDelete, Identities: cfg.Identities, Logger: cfg.Logger}
	if cfg.Status != nil {
		nc.Reserved = ControlDir
	}
	f := &FS{cfg: cfg, log: cfg.Logger, ns: namespace.New(c, nc), kept: forget.New(cfg.PlusFiles, (*fileNode).busy),
		guard: watchdog.Guard{Tracker: cfg.Tracker, Logger: cfg.Logger}}
	go f.kept.Run(cfg.Context, (*fileNode).forget)
	return &dirNode{fs: f, d: f.ns.Root(cfg.Bucket, cfg.Prefix)}
}

// Options returns the go-fuse options: the kernel keeps entries and
// attributes as long as the cache trusts them.
func Options(c *cache.Cache) *fs.Options {
	cc := c.Config()
	entry, neg := cc.MetadataTTL, cc.NegativeTTL
	return &fs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &entry,
		NegativeTimeout: &neg,
	}
}

// Drain uploads, once more, every file whose upload failed, after the
// unmount, and reports the staging files kept (namespace.NS.Drain).
func Drain(ctx context.Context, root fs.InodeEmbedder) (kept []string) {
	if f := fsOf(root); f != nil {
		return f.ns.Drain(ctx)
	}
	return nil
}

// fsOf returns the FS of a root New made.
func fsOf(root fs.InodeEmbedder) *FS {
	if d, ok := root.(*dirNode); ok {
		return d.fs
	}
	return nil
}

// fail maps err (namespace.Errno), and logs it unless it is an ordinary
// answer.
func (f *FS) fail(op, bucket, key string, err error) syscall.Errno {
	e, quiet := namespace.Errno(err)
	if !quiet {
		f.log.Warn("request failed", "op", op, "bucket", bucket, "key", key, "errno", e.Error(), "err", err)
	}
	return e
}

// attr fills out: the one place the kernel is given attributes. mode is
// the kind and permission bits; a directory shows the mount's time (S3
// keeps none) and a disk directory's size and links.
func (f *FS) attr(ctx context.Context, out *fuse.Attr, mode uint32, a namespace.Attr) {
	out.Mode = mode
	out.Ino = a.Ino
	out.Nlink = 1
	out.Size = uint64(a.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 1 << 20
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		out.Nlink, out.Size, out.Blocks, out.Blksize = 2, 4096, 0, 4096
		a.ModTime = f.cfg.MountTime
	}
	out.Owner = f.owner(ctx)
	t := a.ModTime
	out.SetTimes(&t, &t, &t)
}

// owner is who every file and directory shows as its owner, for the
// request ctx.
func (f *FS) owner(ctx context.Context) fuse.Owner {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		c = &fuse.Caller{}
	}
	uid, gid := namespace.Owner{UID: f.cfg.UID, GID: f.cfg.GID, Caller: f.cfg.CallerOwns}.Of(c.Uid, c.Gid, ok)
	return fuse.Owner{Uid: uid, Gid: gid}
}

// dirMode and fileMode are the modes of a directory and of the buckets'
// files.
func (f *FS) dirMode(d *namespace.Dir) uint32 { return syscall.S_IFDIR | d.Perm(f.cfg.DirMode) }
func (f *FS) fileMode() uint32                { return syscall.S_IFREG | f.cfg.FileMode }

// entry makes (or finds, by inode number) the inode of e under parent and
// fills out with its attributes.
func (f *FS) entry(ctx context.Context, parent *fs.Inode, e namespace.Entry, out *fuse.Attr) *fs.Inode {
	// The inode the kernel already has under the name, when it is this
	// one, is answered without a new node (a per-user mount looks every
	// name up again on each access: no garbage per LOOKUP).
	ch := parent.GetChild(e.Name)
	switch {
	case e.Dir != nil:
		f.attr(ctx, out, f.dirMode(e.Dir), namespace.Attr{Ino: e.Dir.Ino()})
		if ch != nil && ch.IsDir() && ch.StableAttr().Ino == e.Dir.Ino() {
			return ch
		}
		return parent.NewInode(ctx, &dirNode{fs: f, d: e.Dir}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: e.Dir.Ino()})
	case e.Control != nil:
		n := &controlFile{fs: f, c: *e.Control}
		n.attr(ctx, out)
		return parent.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: e.Control.Ino()})
	}
	var known *namespace.File
	if ch != nil {
		if n, ok := ch.Operations().(*fileNode); ok {
			known = n.f
		}
	}
	f.attr(ctx, out, f.fileMode(), e.File.AttrAs(known))
	if known == nil || ch.StableAttr().Ino != e.File.Ino() {
		n := &fileNode{fs: f, f: e.File}
		ch = parent.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: e.File.Ino()})
		if ch.Operations() == n && n.counted.CompareAndSwap(false, true) {
			f.fileInodes.Add(1) // a new inode, not one the kernel already had
		}
	}
	if n, ok := ch.Operations().(*fileNode); ok {
		f.kept.Use(n)
	}
	return ch
}

// node is what every node embeds: its inode, and Statfs.
type node struct{ fs.Inode }

var (
	_ fs.NodeStatfser      = (*node)(nil)
	_ fs.NodeGetxattrer    = (*node)(nil)
	_ fs.NodeListxattrer   = (*node)(nil)
	_ fs.NodeSetxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
)

// Extended attributes: S3 keeps none that a program could use. A mount
// whose kernel asks (fuse.MountOptions.DisableXAttrs off: a per-user mount,
// see cmd/bucketfs/peruser.go) is told EOPNOTSUPP for every name. Unlike
// ENOSYS, which the kernel remembers and then answers ENODATA for the
// POSIX ACL names, EOPNOTSUPP reaches the program: ls -l takes it as "no
// ACLs or SELinux labels on this file system" and stops asking, where
// ENODATA makes it ask again for every file, each a path walk of its own.
func (*node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

// Listxattr lists no attributes.
func (*node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) { return 0, 0 }

func (*node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func (*node) Removexattr(ctx context.Context, attr string) syscall.Errno { return syscall.EOPNOTSUPP }

// Statfs reports room to spare, so df and tools' free-space checks work
// (S3 has no capacity; a full staging area shows as ENOSPC on write).
func (*node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const n = 1 << 40
	*out = fuse.StatfsOut{Blocks: n, Bfree: n, Bavail: n, Files: n, Ffree: n, Bsize: 4096, Frsize: 4096, NameLen: 255}
	return 0
}
