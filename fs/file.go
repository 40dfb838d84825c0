package fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
)

// fileNode is one object. It keeps no metadata of its own (the cache does);
// it remembers only the ETag of the last open, to decide whether the
// kernel's page cache for this inode still holds the current version.
type fileNode struct {
	gofs.Inode
	fs     *FS
	bucket string
	key    string

	mu       sync.Mutex
	lastETag string
}

var (
	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeStatfser  = (*fileNode)(nil)
	_ gofs.FileReader    = (*fileHandle)(nil)
	_ gofs.FileGetattrer = (*fileHandle)(nil)
	_ gofs.FileReleaser  = (*fileHandle)(nil)
)

func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*fileHandle); ok {
		return h.Getattr(ctx, out)
	}
	o, err := n.fs.cache.StatFile(ctx, n.bucket, n.key)
	if err != nil {
		return n.fs.fail("getattr", n.bucket, n.key, err)
	}
	n.fs.fileAttr(&out.Attr, n.bucket, o)
	return 0
}

func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// Open pins the object's current ETag (as the cache knows it, within the
// metadata TTL). The kernel keeps its page cache for the inode when the
// ETag is the one it cached pages for, so re-reads and mmap cost nothing.
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	o, err := n.fs.cache.StatFile(ctx, n.bucket, n.key)
	if err != nil {
		return nil, 0, n.fs.fail("open", n.bucket, n.key, err)
	}
	var fuseFlags uint32
	n.mu.Lock()
	if o.ETag != "" && o.ETag == n.lastETag {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	n.lastETag = o.ETag
	n.mu.Unlock()
	return &fileHandle{n: n, r: n.fs.cache.Open(n.bucket, o)}, fuseFlags, 0
}

// fileHandle reads one pinned version of the object.
type fileHandle struct {
	n *fileNode
	r *cache.Reader
}

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	data, err := h.r.Slice(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.n.fs.fail("read", h.n.bucket, h.n.key, err)
	}
	return fuse.ReadResultData(data), 0
}

func (h *fileHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	h.n.fs.fileAttr(&out.Attr, h.n.bucket, h.r.Object())
	return 0
}

func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.r.Close()
	return 0
}
