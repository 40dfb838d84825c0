// Package fusefs owns the kernel's side of a mount: go-fuse nodes that turn each request
// into one namespace call, and its answer into attributes, entries, inodes and errno values.
package fusefs

import (
	"context"
	"log/slog"
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
	// The owner and permission bits of every file and directory, and the
	// mtime of directories (namespace.Show; CallerOwns is its Caller).
	UID, GID          uint32
	FileMode, DirMode uint32
	CallerOwns        bool
	MountTime         time.Time
	Logger            *slog.Logger
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
	// (forget.Plus), and the kernel is asked to forget the least recently
	// given files not in use (forget.LRU).
	PlusFiles int
	// Context bounds the background work (forgetting inodes); nil: never
	// cancelled.
	Context context.Context
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultPlusFiles is Config.PlusFiles when zero.
const DefaultPlusFiles = 100_000

// FS holds what every node shares.
type FS struct {
	cfg  Config
	ns   *namespace.NS
	show namespace.Show
	log  *slog.Logger

	guard watchdog.Guard // every request's (op.go)

	plus *forget.Plus // whether directory reads give files' attributes
	kept *forget.LRU[*fileNode]
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
		nc.Reserved = namespace.ControlDir
	}
	show := namespace.Show{UID: cfg.UID, GID: cfg.GID, FileMode: cfg.FileMode, DirMode: cfg.DirMode, Caller: cfg.CallerOwns, MountTime: cfg.MountTime}
	f := &FS{cfg: cfg, log: cfg.Logger, ns: namespace.New(c, nc), show: show, guard: watchdog.Guard{Tracker: cfg.Tracker, Logger: cfg.Logger},
		plus: forget.NewPlus(cfg.PlusFiles, cfg.Now), kept: forget.New(cfg.PlusFiles, (*fileNode).busy)}
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
	if d, ok := root.(*dirNode); ok {
		return d.fs.ns.Drain(ctx)
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

// setAttr fills out with st: the one place the kernel is given
// attributes (namespace.Show decides them).
func setAttr(out *fuse.Attr, st namespace.Stat) {
	out.Mode = st.Mode
	out.Ino = st.Ino
	out.Nlink = st.Nlink
	out.Size = st.Size
	out.Blocks = st.Blocks
	out.Blksize = st.Blksize
	out.Owner = fuse.Owner{Uid: st.UID, Gid: st.GID}
	out.SetTimes(&st.Time, &st.Time, &st.Time)
}

// attrOut is setAttr for a GETATTR or SETATTR reply, with its timeout.
func attrOut(out *fuse.AttrOut, st namespace.Stat) {
	setAttr(&out.Attr, st)
	if st.Timeout > 0 {
		out.SetTimeout(st.Timeout)
	}
}

// caller is who made the request of ctx.
func caller(ctx context.Context) namespace.Caller {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return namespace.Caller{}
	}
	return namespace.Caller{UID: c.Uid, GID: c.Gid, Known: true}
}

// entry makes (or finds, by inode number) the inode of e under parent and
// fills out with its attributes.
func (f *FS) entry(ctx context.Context, parent *fs.Inode, e namespace.Entry, out *fuse.Attr) *fs.Inode {
	// The inode the kernel already has under the name, when it is this
	// one, is answered without a new node (a per-user mount looks every
	// name up again on each access: no garbage per LOOKUP).
	ch := parent.GetChild(e.Name)
	switch {
	case e.Dir != nil:
		setAttr(out, f.show.Dir(e.Dir, caller(ctx)))
		if ch != nil && ch.IsDir() && ch.StableAttr().Ino == e.Dir.Ino() {
			return ch
		}
		return parent.NewInode(ctx, &dirNode{fs: f, d: e.Dir}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: e.Dir.Ino()})
	case e.Control != nil:
		setAttr(out, f.show.Control(*e.Control, f.cfg.Now(), caller(ctx)))
		return parent.NewInode(ctx, &controlFile{fs: f, c: *e.Control}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: e.Control.Ino()})
	}
	known := entryOf(ch).File
	setAttr(out, f.show.File(e.File.AttrAs(known), caller(ctx)))
	if known == nil || ch.StableAttr().Ino != e.File.Ino() {
		n := &fileNode{fs: f, f: e.File}
		ch = parent.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: e.File.Ino()})
		if ch.Operations() == n && n.counted.CompareAndSwap(false, true) {
			f.plus.Hold(1) // a new inode, not one the kernel already had
		}
	}
	if n, ok := ch.Operations().(*fileNode); ok {
		f.kept.Use(n)
	}
	return ch
}

// entryOf is what the inode in (nil: none) is in the namespace: a
// directory or a file, or Entry{}.
func entryOf(in *fs.Inode) (e namespace.Entry) {
	if in == nil {
		return e
	}
	switch n := in.Operations().(type) {
	case *dirNode:
		e.Dir = n.d
	case *fileNode:
		e.File = n.f
	}
	return e
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
