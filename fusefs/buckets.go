package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/namespace"
)

// bucketsNode is the root of an all-buckets mount: one directory per bucket.
type bucketsNode struct {
	node
	fs *FS
}

var (
	_ fs.NodeLookuper       = (*bucketsNode)(nil)
	_ fs.NodeGetattrer      = (*bucketsNode)(nil)
	_ fs.NodeOpendirHandler = (*bucketsNode)(nil)
	_ fs.FileReaddirenter   = (*bucketsHandle)(nil)
	_ fs.FileLookuper       = (*bucketsHandle)(nil)
	_ fs.FileSeekdirer      = (*bucketsHandle)(nil)
)

func (b *bucketsNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer b.fs.op(ctx, "getattr", "", "", &errno)()
	b.fs.attr(ctx, &out.Attr, b.fs.dirMode(), namespace.Attr{Ino: 1})
	return 0
}

func (b *bucketsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer b.fs.op(ctx, "lookup", name, "", &errno)()
	if b.fs.ns.Reserved(name) {
		return b.fs.lookupControl(ctx, b.EmbeddedInode(), out), 0
	}
	d, err := b.fs.ns.Bucket(ctx, name)
	if err != nil {
		return nil, b.fs.fail("lookup", name, "", err)
	}
	return b.fs.entry(ctx, b.EmbeddedInode(), namespace.Entry{Name: name, Dir: d}, &out.Attr), 0
}

func (b *bucketsNode) OpendirHandle(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer b.fs.op(ctx, "opendir", "", "", &errno)()
	names, err := b.fs.ns.Buckets(ctx)
	if err != nil {
		return nil, 0, b.fs.fail("listbuckets", "", "", err)
	}
	return &bucketsHandle{b: b, names: names}, 0, 0
}

// bucketsHandle lists the buckets fetched when the root was opened, after
// "." and "..".
type bucketsHandle struct {
	b     *bucketsNode
	names []string
	dots  int
	pos   int
}

func (h *bucketsHandle) Readdirent(ctx context.Context) (_ *fuse.DirEntry, errno syscall.Errno) {
	defer h.b.fs.op(ctx, "readdir", "", "", &errno)()
	if de := dots(&h.dots, h.b.EmbeddedInode()); de != nil {
		return de, 0
	}
	if h.pos >= len(h.names) {
		return nil, 0
	}
	name := h.names[h.pos]
	h.pos++
	return &fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: namespace.Ino(name, "", true)}, 0
}

func (h *bucketsHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer h.b.fs.op(ctx, "readdirplus", name, "", &errno)()
	return h.b.fs.entry(ctx, h.b.EmbeddedInode(), namespace.Entry{Name: name, Dir: h.b.fs.ns.Dir(name, "")}, &out.Attr), 0
}

func (h *bucketsHandle) Seekdir(ctx context.Context, off uint64) (errno syscall.Errno) {
	defer h.b.fs.op(ctx, "seekdir", "", "", &errno)()
	if off != 0 {
		return syscall.ENOTSUP
	}
	h.pos, h.dots = 0, 0
	return 0
}
