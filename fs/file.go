package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// fileNode is one version of one object (see fileIno): its attributes
// never change, and every open of it reads that version, pinned by ETag.
type fileNode struct {
	gofs.Inode
	fs     *FS
	bucket string
	key    string
	obj    store.Object
	// ov, once set, overrides key and obj: the file is (or was) written
	// or renamed by this mount (write.go).
	ov atomic.Pointer[wfile]
	// counted says the node is in FS.fileInodes, until the kernel forgets it.
	counted atomic.Bool
}

// OnForget: the kernel no longer holds the inode.
func (n *fileNode) OnForget() {
	if n.counted.CompareAndSwap(true, false) {
		n.fs.fileInodes.Add(-1)
	}
}

var (
	_ gofs.NodeGetattrer   = (*fileNode)(nil)
	_ gofs.NodeOpener      = (*fileNode)(nil)
	_ gofs.NodeStatfser    = (*fileNode)(nil)
	_ gofs.NodeOnForgetter = (*fileNode)(nil)
	_ gofs.FileReader      = (*fileHandle)(nil)
	_ gofs.FileGetattrer   = (*fileHandle)(nil)
	_ gofs.FileReleaser    = (*fileHandle)(nil)
)

// Getattr reports the inode's version, with or without a handle (go-fuse
// passes an arbitrary open handle when the kernel names none; all of them
// read this same version). Whether the name now means another version is
// for the next LOOKUP to say, once the kernel's entry expires.
func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.track(ctx, "getattr", n.bucket, n.key)()
	defer n.fs.guard("getattr", n.bucket, n.key, &errno)
	if w := n.ov.Load(); w != nil {
		w.attr(&out.Attr)
		return 0
	}
	n.fs.fileAttr(&out.Attr, n.bucket, n.obj)
	return 0
}

func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// Open pins the inode's version. The kernel may keep its page cache
// (FOPEN_KEEP_CACHE): an inode is one version, so cached pages are always
// the right bytes, and re-reads and mmap cost nothing.
func (n *fileNode) Open(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.fs.track(ctx, "open", n.bucket, n.key)()
	defer n.fs.guard("open", n.bucket, n.key, &errno)
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 || n.ov.Load() != nil {
		return n.openWritable(ctx, flags)
	}
	return &fileHandle{n: n, r: n.fs.cache.Open(n.bucket, n.obj)}, fuse.FOPEN_KEEP_CACHE, 0
}

// fileHandle reads one pinned version of the object.
type fileHandle struct {
	n *fileNode
	r *cache.Reader
}

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	defer h.n.fs.track(ctx, "read", h.n.bucket, h.n.key)()
	defer h.n.fs.guard("read", h.n.bucket, h.n.key, &errno)
	data, err := h.r.Slice(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, store.ErrNotFound) {
			// Deleted since the open: the handle is stale, as when the
			// object was replaced.
			err = fmt.Errorf("%w: deleted since the open (%v)", store.ErrChanged, err)
		}
		if errors.Is(err, store.ErrChanged) {
			h.n.stale()
		}
		return nil, h.n.fs.fail("read", h.n.bucket, h.n.key, err)
	}
	return fuse.ReadResultData(data), 0
}

// stale makes the next open of the name see the current object: the cache
// forgets what it knew of the key, and the kernel drops its entry for the
// name, which still leads to this (old) inode until the metadata TTL ends.
//
// The entry is dropped after the READ has been answered, never inside it:
// the kernel takes the parent directory's lock to drop it, and a LOOKUP or
// READDIRPLUS of that directory may hold the lock while it waits for this
// very read (it drops pages of the file, which stay locked until the read
// is answered). Notifying from inside READ deadlocked the mount: cat in D
// state on a page lock, ls or find in getdents, the daemon idle in write(2)
// to /dev/fuse (fs/notify_test.go).
func (n *fileNode) stale() {
	n.fs.cache.Forget(n.bucket, n.key)
	if name, parent := n.Parent(); parent != nil {
		go parent.NotifyEntry(name)
	}
}

func (h *fileHandle) Getattr(ctx context.Context, out *fuse.AttrOut) (errno syscall.Errno) {
	defer h.n.fs.track(ctx, "getattr", h.n.bucket, h.n.key)()
	defer h.n.fs.guard("getattr", h.n.bucket, h.n.key, &errno)
	h.n.fs.fileAttr(&out.Attr, h.n.bucket, h.r.Object())
	return 0
}

func (h *fileHandle) Release(ctx context.Context) (errno syscall.Errno) {
	defer h.n.fs.track(ctx, "release", h.n.bucket, h.n.key)()
	defer h.n.fs.guard("release", h.n.bucket, h.n.key, &errno)
	h.r.Close()
	return 0
}
