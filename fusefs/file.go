package fusefs

import (
	"context"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/namespace"
)

// fileNode is a file: one version of an object, or a file the mount
// writes (namespace.File).
type fileNode struct {
	node
	fs *FS
	f  *namespace.File
	// counted says the node is counted in FS.plus, until the kernel forgets it.
	counted atomic.Bool
	open    atomic.Int32 // handles open
}

// OnForget: the kernel no longer holds the inode.
func (n *fileNode) OnForget() {
	if n.counted.CompareAndSwap(true, false) {
		n.fs.plus.Hold(-1)
	}
	n.fs.kept.Drop(n)
}

// busy says the kernel must keep the inode: it is open, or the mount
// writes the file (FS.kept).
func (n *fileNode) busy() bool { return n.open.Load() > 0 || !n.f.Pinned() }

// forget asks the kernel to drop the name of n, so it forgets the inode
// once unused (FS.kept); never from inside a request (see handle.Read).
func (n *fileNode) forget() {
	if name, parent := n.Parent(); parent != nil {
		parent.NotifyEntry(name)
	}
}

// forgetAfter drops the kernel's entry of n (namespace.Handle.Stale) once
// the request is answered: from inside it, it deadlocked with a LOOKUP
// waiting for the request (notify_test.go).
func (n *fileNode) forgetAfter() {
	if name, parent := n.Parent(); parent != nil {
		go parent.NotifyEntry(name)
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
)

// Getattr reports the inode's version, with or without a handle: whether
// the name now means another is for the next LOOKUP to say.
func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := n.f.Name()
	defer n.fs.op(&ctx, "getattr", b, k, &errno)()
	attrOut(out, n.fs.show.File(n.f.AttrWith(ctx, handleOf(fh)), caller(ctx)))
	return 0
}

// handleOf is the namespace's handle of fh (nil: none).
func handleOf(fh fs.FileHandle) *namespace.Handle {
	if h, ok := fh.(*handle); ok {
		return h.h
	}
	return nil
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	b, k := n.f.Name()
	defer n.fs.op(&ctx, "open", b, k, &errno)()
	h, err := n.f.Open(ctx, flags)
	if err != nil {
		return nil, 0, n.fs.fail("open", b, k, err)
	}
	fh, fuseFlags := n.fs.handle(n, h)
	return fh, fuseFlags, 0
}

// handle wraps an open, with the kernel's page cache as h.Pages says.
func (f *FS) handle(n *fileNode, h *namespace.Handle) (fs.FileHandle, uint32) {
	n.open.Add(1)
	return &handle{n: n, h: h}, openFlags[h.Pages()]
}

// openFlags are the open flags of each namespace.PageCache.
var openFlags = [...]uint32{namespace.PagesKeep: fuse.FOPEN_KEEP_CACHE, namespace.PagesBypass: fuse.FOPEN_DIRECT_IO}

// Setattr sets the size (namespace.File.SetSize); times, modes and
// owners are ignored, as S3 keeps none.
func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := n.f.Name()
	defer n.fs.op(&ctx, "setattr", b, k, &errno)()
	sz, set := in.GetSize()
	a, err := n.f.SetSize(ctx, handleOf(fh), int64(sz), set)
	if err != nil {
		return n.fs.fail("truncate", b, k, err)
	}
	attrOut(out, n.fs.show.File(a, caller(ctx)))
	return 0
}

// handle is one open file.
type handle struct {
	n *fileNode
	h *namespace.Handle
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(&ctx, "read", b, k, &errno)()
	head, tail, hold, err := h.h.ReadSpan(ctx, dest, off)
	if err != nil {
		if h.h.Stale(err) {
			h.n.forgetAfter()
		}
		return nil, h.n.fs.fail("read", b, k, err)
	}
	return newReadResult(head, tail, hold), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(&ctx, "write", b, k, &errno)()
	n, err := h.h.Write(ctx, data, off)
	return uint32(n), h.n.fs.fail("write", b, k, err)
}

// Flush runs at every close(2), and its failure is close's.
func (h *handle) Flush(ctx context.Context) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(&ctx, "flush", b, k, &errno)()
	err := h.h.Flush(ctx)
	if h.h.Stale(err) {
		h.n.forgetAfter()
	}
	return h.n.fs.fail("close", b, k, err)
}

func (h *handle) Fsync(ctx context.Context, flags uint32) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(&ctx, "fsync", b, k, &errno)()
	err := h.h.Fsync(ctx)
	if h.h.Stale(err) {
		h.n.forgetAfter()
	}
	return h.n.fs.fail("fsync", b, k, err)
}

func (h *handle) Release(ctx context.Context) (errno syscall.Errno) {
	b, k := h.h.Name()
	defer h.n.fs.op(&ctx, "release", b, k, &errno)()
	h.h.Release(ctx)
	h.n.open.Add(-1)
	return 0
}

// readResult is a READ reply that may point into a cached block: go-fuse
// calls Done once the bytes have been written to the kernel (or the reply
// is dropped), and only then may the block's buffer be reused. Slices
// makes go-fuse write it with one writev: for plain bytes it would first
// try a splice, which costs a pipe, its resizing and a write of the header
// into it before giving up (bytes are not a file), on every READ.
// A reply across two blocks is two slices (namespace.Handle.ReadSpan).
type readResult struct {
	vec  [2][]byte // the second nil but for a reply across two blocks
	hold cache.Hold
}

func newReadResult(head, tail []byte, hold cache.Hold) *readResult {
	return &readResult{vec: [2][]byte{head, tail}, hold: hold}
}

func (r *readResult) Size() int { return len(r.vec[0]) + len(r.vec[1]) }
func (r *readResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	b, _ := cache.Join(buf, r.vec[0], r.vec[1], cache.Hold{})
	return b, fuse.OK
}
func (r *readResult) Slices() ([][]byte, fuse.Status) {
	if r.vec[1] == nil {
		return r.vec[:1], fuse.OK
	}
	return r.vec[:], fuse.OK
}
func (r *readResult) Done() { r.hold.Release(); r.hold = cache.Hold{} }
