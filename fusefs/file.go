package fusefs

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/store"
)

// fileNode is a file: one version of an object, or a file the mount
// writes (namespace.File).
type fileNode struct {
	node
	fs *FS
	f  *namespace.File
	// counted says the node is in FS.fileInodes, until the kernel forgets it.
	counted atomic.Bool
	open    atomic.Int32 // handles open
}

// OnForget: the kernel no longer holds the inode.
func (n *fileNode) OnForget() {
	if n.counted.CompareAndSwap(true, false) {
		n.fs.fileInodes.Add(-1)
	}
	n.fs.kept.Drop(n)
}

// busy says the kernel must keep the inode: it is open, or the mount
// writes the file (FS.kept).
func (n *fileNode) busy() bool { return n.open.Load() > 0 || !n.f.Pinned() }

// forget asks the kernel to drop the name of n, so that it forgets the
// inode once no one uses it (FS.kept). Never from inside a request:
// the kernel takes the directory's lock (see handle.Read).
func (n *fileNode) forget() {
	if name, parent := n.Parent(); parent != nil {
		parent.NotifyEntry(name)
	}
}

var (
	_ fs.NodeGetattrer   = (*fileNode)(nil)
	_ fs.NodeOpener      = (*fileNode)(nil)
	_ fs.NodeSetattrer   = (*fileNode)(nil)
	_ fs.NodeOnForgetter = (*fileNode)(nil)
	_ fs.FileReader      = (*handle)(nil)
	_ fs.FileWriter      = (*handle)(nil)
	_ fs.FileFlusher     = (*handle)(nil)
	_ fs.FileFsyncer     = (*handle)(nil)
	_ fs.FileReleaser    = (*handle)(nil)
	_ fs.FileGetattrer   = (*handle)(nil)
	_ fs.FileSetattrer   = (*handle)(nil)
)

// Getattr reports the inode's version, with or without a handle (go-fuse
// passes an arbitrary open handle when the kernel names none; all of them
// read this same version). Whether the name now means another version is
// for the next LOOKUP to say, once the kernel's entry expires.
func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := n.f.Name()
	defer n.fs.op(ctx, "getattr", b, k, &errno)()
	n.fs.attr(ctx, &out.Attr, n.fs.fileMode(), n.f.Attr())
	return 0
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	b, k := n.f.Name()
	defer n.fs.op(ctx, "open", b, k, &errno)()
	h, err := n.f.Open(ctx, flags)
	if err != nil {
		return nil, 0, n.fs.fail("open", b, k, err)
	}
	fh, fuseFlags := n.fs.handle(n, h)
	return fh, fuseFlags, 0
}

// handle wraps an open. A pinned version may keep the kernel's page cache
// (FOPEN_KEEP_CACHE): an inode is one version, so cached pages are always
// the right bytes, and re-reads and mmap cost nothing. Other opens drop
// it, as it may hold what an earlier version said; a descriptor that may
// write bypasses it (FOPEN_DIRECT_IO): the staged file already holds the
// bytes, and a second copy would only cost a copy and memory.
func (f *FS) handle(n *fileNode, h *namespace.Handle) (fs.FileHandle, uint32) {
	var flags uint32
	switch {
	case h.Pinned():
		flags = fuse.FOPEN_KEEP_CACHE
	case h.Writer():
		flags = fuse.FOPEN_DIRECT_IO
	}
	n.open.Add(1)
	return &handle{n: n, h: h}, flags
}

// Setattr without a handle: truncate(2) by path is staged and uploaded at
// once; times, modes and owners are not kept by S3 and are accepted and
// ignored, so touch, cp -p and R's file.copy work.
func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := n.f.Name()
	defer n.fs.op(ctx, "setattr", b, k, &errno)()
	if h, ok := fh.(*handle); ok && !h.h.Pinned() {
		return h.Setattr(ctx, in, out)
	}
	a := n.f.Attr()
	if sz, ok := in.GetSize(); ok {
		var err error
		if a, err = n.f.Truncate(ctx, int64(sz)); err != nil {
			return n.fs.fail("truncate", b, k, err)
		}
	}
	n.fs.attr(ctx, &out.Attr, n.fs.fileMode(), a)
	return 0
}

// handle is one open file.
type handle struct {
	n *fileNode
	h *namespace.Handle
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "read", b, k, &errno)()
	data, hold, err := h.h.Read(ctx, dest, off)
	if err != nil {
		if h.h.Pinned() && errors.Is(err, store.ErrChanged) {
			// The kernel's entry for the name still leads to this (old)
			// inode until the metadata TTL ends: drop it, after the READ
			// has been answered, never inside it. The kernel takes the
			// parent directory's lock to drop it, and a LOOKUP or
			// READDIRPLUS of that directory may hold the lock while it
			// waits for this very read (it drops pages of the file, which
			// stay locked until the read is answered): notifying from
			// inside READ deadlocked the mount (notify_test.go).
			if name, parent := h.n.Parent(); parent != nil {
				go parent.NotifyEntry(name)
			}
		}
		return nil, h.n.fs.fail("read", b, k, err)
	}
	return newReadResult(data, hold), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "write", b, k, &errno)()
	n, err := h.h.Write(ctx, data, off)
	return uint32(n), h.n.fs.fail("write", b, k, err)
}

// Flush runs at every close of a descriptor: its failure is what close()
// returns.
func (h *handle) Flush(ctx context.Context) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "flush", b, k, &errno)()
	return h.n.fs.fail("close", b, k, h.h.Flush(ctx))
}

func (h *handle) Fsync(ctx context.Context, flags uint32) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "fsync", b, k, &errno)()
	return h.n.fs.fail("fsync", b, k, h.h.Fsync(ctx))
}

func (h *handle) Release(ctx context.Context) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "release", b, k, &errno)()
	h.h.Release(ctx)
	h.n.open.Add(-1)
	return 0
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "getattr", b, k, &errno)()
	h.n.fs.attr(ctx, &out.Attr, h.n.fs.fileMode(), h.h.Attr())
	return 0
}

func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(ctx, "setattr", b, k, &errno)()
	if sz, ok := in.GetSize(); ok {
		if err := h.h.Truncate(ctx, int64(sz)); err != nil {
			return h.n.fs.fail("truncate", b, k, err)
		}
	}
	h.n.fs.attr(ctx, &out.Attr, h.n.fs.fileMode(), h.h.Attr())
	return 0
}

// readResult is a READ reply that may point into a cached block: go-fuse
// calls Done once the bytes have been written to the kernel (or the reply
// is dropped), and only then may the block's buffer be reused. Slices
// makes go-fuse write it with one writev: for plain bytes it would first
// try a splice, which costs a pipe, its resizing and a write of the header
// into it before giving up (bytes are not a file), on every READ.
type readResult struct {
	vec  [1][]byte
	hold cache.Hold
}

func newReadResult(data []byte, hold cache.Hold) *readResult {
	return &readResult{vec: [1][]byte{data}, hold: hold}
}

func (r *readResult) Size() int                          { return len(r.vec[0]) }
func (r *readResult) Bytes([]byte) ([]byte, fuse.Status) { return r.vec[0], fuse.OK }
func (r *readResult) Slices() ([][]byte, fuse.Status)    { return r.vec[:], fuse.OK }
func (r *readResult) Done()                              { r.hold.Release(); r.hold = cache.Hold{} }
