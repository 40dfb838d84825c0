package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/namespace"
)

// The control directory and its files (namespace.ControlFiles says what
// each is; Config.Status makes the status).
const (
	ControlDir     = namespace.ControlDir
	StatusFile     = namespace.StatusFile
	StatusJSONFile = namespace.StatusJSONFile
	RefreshFile    = namespace.RefreshFile
)

// controlDir is ControlDir.
type controlDir struct {
	node
	fs *FS
}

// controlFile is one of namespace.ControlFiles.
type controlFile struct {
	node
	fs *FS
	c  namespace.ControlFile
}

// controlHandle is one open of a control file: the status made at open,
// or the lines written to RefreshFile.
type controlHandle struct {
	n     *controlFile
	data  []byte
	lines namespace.RefreshLines
}

var (
	_ fs.NodeLookuper  = (*controlDir)(nil)
	_ fs.NodeReaddirer = (*controlDir)(nil)
	_ fs.NodeGetattrer = (*controlDir)(nil)
	_ fs.NodeSetattrer = (*controlDir)(nil)
	_ fs.NodeCreater   = (*controlDir)(nil)
	_ fs.NodeMkdirer   = (*controlDir)(nil)
	_ fs.NodeMknoder   = (*controlDir)(nil)
	_ fs.NodeSymlinker = (*controlDir)(nil)
	_ fs.NodeLinker    = (*controlDir)(nil)
	_ fs.NodeUnlinker  = (*controlDir)(nil)
	_ fs.NodeRmdirer   = (*controlDir)(nil)
	_ fs.NodeRenamer   = (*controlDir)(nil)
	_ fs.NodeGetattrer = (*controlFile)(nil)
	_ fs.NodeSetattrer = (*controlFile)(nil)
	_ fs.NodeOpener    = (*controlFile)(nil)
	_ fs.FileReader    = (*controlHandle)(nil)
	_ fs.FileWriter    = (*controlHandle)(nil)
	_ fs.FileFlusher   = (*controlHandle)(nil)
)

// lookupControl returns the control directory's inode under the root
// (parent); the namespace says which name is it (namespace.Config.Reserved).
func (f *FS) lookupControl(ctx context.Context, parent *fs.Inode, out *fuse.EntryOut) *fs.Inode {
	f.controlDirAttr(ctx, &out.Attr)
	return parent.NewInode(ctx, &controlDir{fs: f}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: namespace.ControlIno("")})
}

func (f *FS) controlDirAttr(ctx context.Context, out *fuse.Attr) {
	f.attr(ctx, out, syscall.S_IFDIR|0o555, namespace.Attr{Ino: namespace.ControlIno("")})
}

// attr: the content is as of now. Reads of what an open made go on to its
// end whatever the size (0) says: handles are FOPEN_DIRECT_IO.
func (n *controlFile) attr(ctx context.Context, out *fuse.Attr) {
	n.fs.attr(ctx, out, syscall.S_IFREG|n.c.Perm, namespace.Attr{Ino: n.c.Ino(), ModTime: n.fs.cfg.Now()})
}

func (c *controlDir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer c.fs.op(ctx, "getattr", "", ControlDir, &errno)()
	c.fs.controlDirAttr(ctx, &out.Attr)
	return 0
}

func (c *controlDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer c.fs.op(ctx, "lookup", "", ControlDir+"/"+name, &errno)()
	cf, ok := namespace.Control(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	n := &controlFile{fs: c.fs, c: cf}
	n.attr(ctx, &out.Attr)
	return c.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: cf.Ino()}), 0
}

func (c *controlDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var list []fuse.DirEntry
	for _, cf := range namespace.ControlFiles {
		list = append(list, fuse.DirEntry{Name: cf.Name, Mode: syscall.S_IFREG, Ino: cf.Ino()})
	}
	return fs.NewListDirStream(list), 0
}

// Every change to the control directory fails with EPERM. go-fuse would
// answer ENOTSUP for most of them, and for unlink and rmdir success
// without doing anything.

func (*controlDir) Setattr(context.Context, fs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EPERM
}
func (*controlDir) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EPERM
}
func (*controlDir) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}
func (*controlDir) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}
func (*controlDir) Symlink(context.Context, string, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}
func (*controlDir) Link(context.Context, fs.InodeEmbedder, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}
func (*controlDir) Unlink(context.Context, string) syscall.Errno { return syscall.EPERM }
func (*controlDir) Rmdir(context.Context, string) syscall.Errno  { return syscall.EPERM }
func (*controlDir) Rename(context.Context, string, fs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EPERM
}

func (n *controlFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.op(ctx, "getattr", "", ControlDir+"/"+n.c.Name, &errno)()
	n.attr(ctx, &out.Attr)
	return 0
}

func (n *controlFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.op(ctx, "setattr", "", ControlDir+"/"+n.c.Name, &errno)()
	sz, ok := in.GetSize()
	if err := n.c.Setattr(sz, ok && in.Valid&^(fuse.FATTR_SIZE|fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0); err != nil {
		return n.fs.fail("setattr", "", ControlDir+"/"+n.c.Name, err)
	}
	n.attr(ctx, &out.Attr)
	return 0
}

// Open of a file that is read makes its content: each open sees the mount
// as it is then, and keeps that one snapshot however it reads it.
func (n *controlFile) Open(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.fs.op(ctx, "open", "", ControlDir+"/"+n.c.Name, &errno)()
	if err := n.c.Open(flags); err != nil {
		return nil, 0, n.fs.fail("open", "", ControlDir+"/"+n.c.Name, err)
	}
	h := &controlHandle{n: n}
	if !n.c.Written {
		text, js := n.fs.cfg.Status()
		h.data = text
		if n.c.JSON {
			h.data = js
		}
	}
	return h, fuse.FOPEN_DIRECT_IO, 0
}

func (h *controlHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
}

// Write refreshes each line as it completes (RefreshFile).
func (h *controlHandle) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	defer h.n.fs.op(ctx, "write", "", ControlDir+"/"+h.n.c.Name, &errno)()
	if err := h.lines.Write(data, h.n.refresh); err != nil {
		return 0, h.n.fs.fail("refresh", "", ControlDir+"/"+h.n.c.Name, err)
	}
	return uint32(len(data)), 0
}

// Flush refreshes a last line written without a newline.
func (h *controlHandle) Flush(ctx context.Context) (errno syscall.Errno) {
	defer h.n.fs.op(ctx, "flush", "", ControlDir+"/"+h.n.c.Name, &errno)()
	return h.n.fs.fail("refresh", "", ControlDir+"/"+h.n.c.Name, h.lines.Flush(h.n.refresh))
}
