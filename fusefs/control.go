package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/namespace"
)

// controlFile is one of namespace.ControlFiles.
type controlFile struct {
	node
	fs *FS
	c  namespace.ControlFile
}

// controlHandle is one open of a control file: the status made at open,
// or the lines written to namespace.RefreshFile.
type controlHandle struct {
	n     *controlFile
	data  []byte
	lines namespace.RefreshLines
}

var (
	_ fs.NodeGetattrer = (*controlFile)(nil)
	_ fs.NodeSetattrer = (*controlFile)(nil)
	_ fs.NodeOpener    = (*controlFile)(nil)
	_ fs.FileReader    = (*controlHandle)(nil)
	_ fs.FileWriter    = (*controlHandle)(nil)
	_ fs.FileFlusher   = (*controlHandle)(nil)
)

// stat shows the file as of now (namespace.Show.Control). Reads of what
// an open made go on to its end whatever the size (0) says: handles are
// FOPEN_DIRECT_IO.
func (n *controlFile) stat(ctx context.Context) namespace.Stat {
	return n.fs.show.Control(n.c, n.fs.cfg.Now(), caller(ctx))
}

func (n *controlFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.op(&ctx, "getattr", "", n.c.Path(), &errno)()
	attrOut(out, n.stat(ctx))
	return 0
}

func (n *controlFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.op(&ctx, "setattr", "", n.c.Path(), &errno)()
	sz, ok := in.GetSize()
	if err := n.c.Setattr(sz, ok && in.Valid&^(fuse.FATTR_SIZE|fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0); err != nil {
		return n.fs.fail("setattr", "", n.c.Path(), err)
	}
	attrOut(out, n.stat(ctx))
	return 0
}

// Open of a file that is read makes its content: each open sees the mount
// as it is then, and keeps that one snapshot however it reads it.
func (n *controlFile) Open(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.fs.op(&ctx, "open", "", n.c.Path(), &errno)()
	if err := n.c.Open(flags); err != nil {
		return nil, 0, n.fs.fail("open", "", n.c.Path(), err)
	}
	return &controlHandle{n: n, data: n.c.Content(n.fs.cfg.Status)}, fuse.FOPEN_DIRECT_IO, 0
}

func (h *controlHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
}

// Write refreshes each line as it completes (namespace.RefreshFile).
func (h *controlHandle) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	defer h.n.fs.op(&ctx, "write", "", h.n.c.Path(), &errno)()
	if err := h.lines.Write(data, h.n.refresh); err != nil {
		return 0, h.n.fs.fail("refresh", "", h.n.c.Path(), err)
	}
	return uint32(len(data)), 0
}

// Flush refreshes a last line written without a newline.
func (h *controlHandle) Flush(ctx context.Context) (errno syscall.Errno) {
	defer h.n.fs.op(&ctx, "flush", "", h.n.c.Path(), &errno)()
	return h.n.fs.fail("refresh", "", h.n.c.Path(), h.lines.Flush(h.n.refresh))
}
