package fusefs

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/namespace"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// RefreshFile is the control file a path is written to, one a line,
// relative to the mount's root ("bucketfs refresh PATH" writes it; from R,
// writeLines("results/2024", "/mnt/s3/.bucketfs/refresh")): the mount
// forgets the cached listings and metadata of that file or directory and
// of everything below it, in the daemon and in the kernel, so a change
// made by someone else shows at once instead of after --metadata-ttl.
const RefreshFile = "refresh"

// refreshFile is ControlDir/RefreshFile: write-only, for the owner.
type refreshFile struct {
	node
	fs *FS
}

// refreshHandle collects what is written until a line is complete (or the
// file is closed).
type refreshHandle struct {
	n    *refreshFile
	mu   sync.Mutex
	part []byte
}

var (
	_ fs.NodeGetattrer = (*refreshFile)(nil)
	_ fs.NodeSetattrer = (*refreshFile)(nil)
	_ fs.NodeOpener    = (*refreshFile)(nil)
	_ fs.FileWriter    = (*refreshHandle)(nil)
	_ fs.FileFlusher   = (*refreshHandle)(nil)
)

func (n *refreshFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.op(ctx, "getattr", "", ControlDir+"/"+RefreshFile, &errno)()
	n.fs.controlFileAttr(ctx, &out.Attr, RefreshFile)
	return 0
}

// Setattr allows only what "echo PATH > refresh" asks on a kernel without
// atomic O_TRUNC: truncation to 0, which changes nothing.
func (n *refreshFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); !ok || sz != 0 || in.Valid&^(fuse.FATTR_SIZE|fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) != 0 {
		return syscall.EPERM
	}
	n.fs.controlFileAttr(ctx, &out.Attr, RefreshFile)
	return 0
}

func (n *refreshFile) Open(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.fs.op(ctx, "open", "", ControlDir+"/"+RefreshFile, &errno)()
	if flags&syscall.O_ACCMODE != syscall.O_WRONLY {
		return nil, 0, syscall.EPERM
	}
	return &refreshHandle{n: n}, fuse.FOPEN_DIRECT_IO, 0
}

// Write refreshes each complete line at once; a line with a path the
// mount cannot have fails the write with EINVAL.
func (h *refreshHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.part = append(h.part, data...)
	for {
		i := bytes.IndexByte(h.part, '\n')
		if i < 0 {
			break
		}
		line := string(h.part[:i])
		h.part = h.part[i+1:]
		if errno := h.n.fs.refresh(h.n.Root(), line); errno != 0 {
			h.part = nil
			return 0, errno
		}
	}
	if len(h.part) > 4096 {
		h.part = nil
		return 0, syscall.EINVAL
	}
	return uint32(len(data)), 0
}

// Flush refreshes a last line written without a newline.
func (h *refreshHandle) Flush(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := string(h.part)
	h.part = nil
	if strings.TrimSpace(line) == "" {
		return 0
	}
	return h.n.fs.refresh(h.n.Root(), line)
}

// refresh forgets path (relative to the mount's root) and what is below
// it: the cache's listings and metadata, then the kernel's entries and
// attributes, so the next look asks.
func (f *FS) refresh(root *fs.Inode, path string) syscall.Errno {
	bucket, key, segs, err := namespace.RefreshPath(f.cfg.Bucket, f.cfg.Prefix, path)
	if err != nil {
		f.log.Warn("refresh: "+err.Error(), "path", strings.TrimSpace(path))
		return syscall.EINVAL
	}
	f.ns.Refresh(bucket, key)
	f.log.Debug("refreshed", "bucket", bucket, "key", key)

	// The kernel: the entry of path in its parent (a name it remembers
	// as missing too), and the entries and attributes below it. This runs
	// inside a WRITE request, and a notification sent from inside a
	// request can wait on kernel locks that wait on this request (the
	// stall of #11, fusefs/notify_test.go): the notifications go from a
	// goroutine of their own, and the write waits for them only a while.
	done := make(chan struct{})
	go func() {
		defer close(done)
		dir := root
		for i, s := range segs {
			if i == 0 && s == ControlDir {
				return
			}
			_ = dir.NotifyEntry(s)
			child := dir.GetChild(s)
			if child == nil {
				return
			}
			dir = child
		}
		forgetKernel(dir)
	}()
	t := time.NewTimer(refreshKernelWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		f.log.Debug("refresh: the kernel's caches are still being dropped", "bucket", bucket, "key", key)
	}
	return 0
}

// refreshKernelWait is how long a refresh waits for the kernel to drop its
// entries before the write returns.
const refreshKernelWait = 2 * time.Second

// forgetKernel invalidates the cached attributes and pages of n and the
// entries of its children, a level at a time.
func forgetKernel(n *fs.Inode) {
	_ = n.NotifyContent(0, 0)
	for name, child := range n.Children() {
		if name == ControlDir {
			continue
		}
		_ = n.NotifyEntry(name)
		if child.IsDir() {
			forgetKernel(child)
		}
	}
}
