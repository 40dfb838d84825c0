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
	_ fs.NodeUnlinker       = (*bucketsNode)(nil)
	_ fs.NodeRmdirer        = (*bucketsNode)(nil)
	_ fs.NodeRenamer        = (*bucketsNode)(nil)
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
	l, err := b.fs.ns.ListBuckets(ctx)
	if err != nil {
		return nil, 0, b.fs.fail("listbuckets", "", "", err)
	}
	return &dirHandle{fs: b.fs, in: b.EmbeddedInode(), l: l}, 0, 0
}

// The all-buckets root makes no buckets and removes none; these answer
// what go-fuse would not (it lets unlink and rmdir succeed without doing
// anything), with EPERM for the control directory.

func (b *bucketsNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return b.refuse(name)
}

func (b *bucketsNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return b.refuse(name)
}

func (b *bucketsNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if _, into := newParent.(*controlDir); into {
		return syscall.EPERM
	}
	if b.refuse(newName) == syscall.EPERM {
		return syscall.EPERM
	}
	return b.refuse(name)
}

func (b *bucketsNode) refuse(name string) syscall.Errno {
	if b.fs.ns.Reserved(name) {
		return syscall.EPERM
	}
	return syscall.ENOTSUP
}
