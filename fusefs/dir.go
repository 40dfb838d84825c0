package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/namespace"
)

// dirNode is a directory: the root of every bucket, a bucket's root
// (prefix "") or a common prefix.
type dirNode struct {
	node
	fs *FS
	d  *namespace.Dir
}

var (
	_ fs.NodeLookuper       = (*dirNode)(nil)
	_ fs.NodeGetattrer      = (*dirNode)(nil)
	_ fs.NodeOpendirHandler = (*dirNode)(nil)
	_ fs.NodeCreater        = (*dirNode)(nil)
	_ fs.NodeMkdirer        = (*dirNode)(nil)
	_ fs.NodeUnlinker       = (*dirNode)(nil)
	_ fs.NodeRmdirer        = (*dirNode)(nil)
	_ fs.NodeRenamer        = (*dirNode)(nil)
	_ fs.NodeSetattrer      = (*dirNode)(nil)
	_ fs.NodeMknoder        = (*dirNode)(nil)
	_ fs.NodeSymlinker      = (*dirNode)(nil)
	_ fs.NodeLinker         = (*dirNode)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileLookuper       = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
)

func (d *dirNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer d.fs.op(&ctx, "getattr", d.d.Bucket(), d.d.Prefix(), &errno)()
	attrOut(out, d.fs.show.Dir(d.d, caller(ctx)))
	return 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer d.fs.opIn(&ctx, "lookup", d.d.Bucket(), d.d.Prefix(), name, &errno)()
	e, err := d.d.Lookup(ctx, name)
	if err != nil {
		return nil, d.fs.fail("lookup", d.d.Bucket(), d.d.Prefix()+name, err)
	}
	if e.File != nil {
		d.fs.plus.LookedUp() // someone stats files: see Config.PlusFiles
	}
	return d.fs.entry(ctx, d.EmbeddedInode(), e, &out.Attr), 0
}

func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer d.fs.op(&ctx, "opendir", d.d.Bucket(), d.d.Prefix(), &errno)()
	return &dirHandle{fs: d.fs, in: d.EmbeddedInode(), bucket: d.d.Bucket(), prefix: d.d.Prefix(), l: d.d.List()}, 0, 0
}

// dirHandle streams a directory (or the buckets): "." and "..", then the
// namespace's entries as the kernel asks for them.
type dirHandle struct {
	fs             *FS
	in             *fs.Inode
	bucket, prefix string // where, for the log
	l              *namespace.Lister
	dots           int             // "." and ".." given so far
	last           namespace.Entry // the entry Readdirent produced last, for Lookup
}

func (h *dirHandle) Readdirent(ctx context.Context) (_ *fuse.DirEntry, errno syscall.Errno) {
	defer h.fs.op(&ctx, "readdir", h.bucket, h.prefix, &errno)()
	if de := dots(&h.dots, h.in); de != nil {
		return de, 0
	}
	e, ok, err := h.l.Next(ctx)
	if err != nil {
		return nil, h.fs.fail("readdir", h.bucket, h.prefix, err)
	}
	if !ok {
		return nil, 0
	}
	h.last = e
	mode := uint32(syscall.S_IFREG)
	if e.Dir != nil {
		mode = syscall.S_IFDIR
	}
	return &fuse.DirEntry{Name: e.Name, Mode: mode, Ino: e.Ino()}, 0
}

// dots yields "." and ".." of the directory in, then nil (n counts them).
func dots(n *int, in *fs.Inode) *fuse.DirEntry {
	switch *n {
	case 0:
		*n = 1
		return &fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: in.StableAttr().Ino}
	case 1:
		*n = 2
		ino := in.StableAttr().Ino
		if _, p := in.Parent(); p != nil {
			ino = p.StableAttr().Ino
		}
		return &fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: ino}
	}
	return nil
}

// Lookup serves READDIRPLUS from the entry just produced, without a
// request; past Config.PlusFiles a file goes as its name only.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer h.fs.op(&ctx, "readdirplus", h.bucket, h.prefix+name, &errno)()
	if h.last.File != nil && !h.fs.plus.File() {
		// Zero node ID: the kernel takes the name without attributes.
		return nil, syscall.EAGAIN
	}
	return h.fs.entry(ctx, h.in, h.last, &out.Attr), 0
}

// Seekdir supports rewinddir; go-fuse itself replays an interrupted read.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) (errno syscall.Errno) {
	defer h.fs.op(&ctx, "seekdir", h.bucket, h.prefix, &errno)()
	if off != 0 {
		return syscall.ENOTSUP
	}
	h.l.Rewind()
	h.dots = 0
	return 0
}

// Create makes a new file; nothing reaches S3 until it is closed.
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (_ *fs.Inode, _ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer d.fs.op(&ctx, "create", d.d.Bucket(), d.d.Prefix()+name, &errno)()
	f, h, err := d.d.Create(ctx, name, flags)
	if err != nil {
		return nil, nil, 0, d.fs.fail("create", d.d.Bucket(), d.d.Prefix()+name, err)
	}
	in := d.fs.entry(ctx, d.EmbeddedInode(), namespace.Entry{Name: name, File: f}, &out.Attr)
	fh, fuseFlags := d.fs.handle(in.Operations().(*fileNode), h)
	return in, fh, fuseFlags, 0
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer d.fs.op(&ctx, "mkdir", d.d.Bucket(), d.d.Prefix()+name, &errno)()
	nd, err := d.d.Mkdir(ctx, name)
	if err != nil {
		return nil, d.fs.fail("mkdir", d.d.Bucket(), d.d.Prefix()+name, err)
	}
	return d.fs.entry(ctx, d.EmbeddedInode(), namespace.Entry{Name: name, Dir: nd}, &out.Attr), 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) (errno syscall.Errno) {
	defer d.fs.op(&ctx, "unlink", d.d.Bucket(), d.d.Prefix()+name, &errno)()
	return d.fs.fail("unlink", d.d.Bucket(), d.d.Prefix()+name, d.d.Unlink(ctx, name))
}

func (d *dirNode) Rmdir(ctx context.Context, name string) (errno syscall.Errno) {
	defer d.fs.op(&ctx, "rmdir", d.d.Bucket(), d.d.Prefix()+name, &errno)()
	return d.fs.fail("rmdir", d.d.Bucket(), d.d.Prefix()+name, d.d.Rmdir(ctx, name))
}

// Rename moves a file or a directory (namespace.Dir.Rename).
func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) (errno syscall.Errno) {
	defer d.fs.op(&ctx, "rename", d.d.Bucket(), d.d.Prefix()+name, &errno)()
	np, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EXDEV
	}
	noReplace, err := namespace.RenameFlags(flags)
	if err != nil {
		return d.fs.fail("rename", d.d.Bucket(), d.d.Prefix()+name, err)
	}
	child := d.GetChild(name)
	mv, err := d.d.Rename(ctx, name, np.d, newName, noReplace, entryOf(child))
	if err != nil {
		return d.fs.fail("rename", d.d.Bucket(), d.d.Prefix()+name, err)
	}
	if mv != nil {
		if child != nil {
			// The kernel keeps using these inodes until it drops the
			// entries (below): they use the new keys from now on.
			moveTree(child, mv)
		}
		// Drop both names, so the next access looks them up afresh; not
		// from inside RENAME, which holds the directories' locks.
		go func() {
			d.NotifyEntry(name)
			np.NotifyEntry(newName)
		}()
	}
	return 0
}

// moveTree points the inodes at and below a renamed directory at their
// new keys.
func moveTree(in *fs.Inode, mv *namespace.Move) {
	mv.Follow(entryOf(in))
	for _, c := range in.Children() {
		moveTree(c, mv)
	}
}

// Setattr: S3 keeps no times or modes for prefixes (namespace.Dir.SetTimes).
func (d *dirNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer d.fs.op(&ctx, "setattr", d.d.Bucket(), d.d.Prefix(), &errno)()
	if err := d.d.SetTimes(); err != nil {
		return d.fs.fail("setattr", d.d.Bucket(), d.d.Prefix(), err)
	}
	attrOut(out, d.fs.show.Dir(d.d, caller(ctx)))
	return 0
}

// Mknod, Symlink and Link make what S3 cannot hold (namespace.Dir.Special).

func (d *dirNode) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, d.fs.fail("mknod", d.d.Bucket(), d.d.Prefix()+name, d.d.Special())
}

func (d *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, d.fs.fail("symlink", d.d.Bucket(), d.d.Prefix()+name, d.d.Special())
}

func (d *dirNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, d.fs.fail("link", d.d.Bucket(), d.d.Prefix()+name, d.d.Special())
}
