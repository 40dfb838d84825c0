package fusefs

import (
	"context"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/namespace"
)

// The control directory: ControlDir at the root of the mount, holding
// read-only files that describe the running mount (Config.Status). A
// directory rather than an extended attribute, so the mount can keep
// extended attributes disabled: with them on, the kernel asks for
// security labels and ACLs on every file, which made "ls -lR" of 10,000
// files eight times slower.
//
// Lookup finds it but no listing shows it, so find, du, rsync and R's
// list.files never see it or descend into it. Nothing in it, nor the
// directory itself, can be changed: every change fails with EPERM (a
// read-write mount answers EPERM, not EROFS, since the rest of it is
// writable; a read-only mount's kernel answers EROFS first, and with
// default_permissions a user other than root gets EACCES from the mode
// bits before any of this is asked).

// ControlDir is the name of the control directory at the mount's root. It
// is reserved there (and only there): a key or prefix of that name at the
// root of a bucket or prefix mount is not shown.
const ControlDir = ".bucketfs"

// The files of ControlDir: the status for people ("bucketfs status"
// prints the same) and as JSON.
const (
	StatusFile     = "status"
	StatusJSONFile = "status.json"
)

// controlDir is ControlDir.
type controlDir struct {
	node
	fs *FS
}

// controlFile is StatusFile or StatusJSONFile (name).
type controlFile struct {
	node
	fs   *FS
	name string
}

// controlHandle holds the bytes generated at open.
type controlHandle struct {
	data []byte
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
	_ fs.NodeUnlinker  = (*bucketsNode)(nil)
	_ fs.NodeRmdirer   = (*bucketsNode)(nil)
	_ fs.NodeRenamer   = (*bucketsNode)(nil)
)

// controlIno gives the control directory and its files inode numbers no
// bucket's name can produce (bucket names hold no NUL).
func controlIno(name string, dir bool) uint64 { return namespace.Ino("\x00"+ControlDir, name, dir) }

// lookupControl returns the control directory's inode under the root
// (parent); the namespace says which name is it (namespace.Config.Reserved).
func (f *FS) lookupControl(ctx context.Context, parent *fs.Inode, out *fuse.EntryOut) *fs.Inode {
	f.controlDirAttr(ctx, &out.Attr)
	return parent.NewInode(ctx, &controlDir{fs: f}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: controlIno("", true)})
}

func (f *FS) controlDirAttr(ctx context.Context, out *fuse.Attr) {
	f.attr(ctx, out, syscall.S_IFDIR|0o555, namespace.Attr{Ino: controlIno("", true)})
}

// controlFileAttr: size 0, as for the files of /proc. The content is made
// at each open and its length is not known before; the handle is opened
// with FOPEN_DIRECT_IO, so reads go on to the end of what was made
// whatever the size says. The times are now: the content is as of now.
func (f *FS) controlFileAttr(ctx context.Context, out *fuse.Attr, name string) {
	mode := uint32(0o444)
	if name == RefreshFile {
		mode = 0o222 // written to; it only makes the mount ask again
	}
	f.attr(ctx, out, syscall.S_IFREG|mode, namespace.Attr{Ino: controlIno(name, false), ModTime: time.Now()})
}

func (c *controlDir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer c.fs.op(ctx, "getattr", "", ControlDir, &errno)()
	c.fs.controlDirAttr(ctx, &out.Attr)
	return 0
}

func (c *controlDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *fs.Inode, errno syscall.Errno) {
	defer c.fs.op(ctx, "lookup", "", ControlDir+"/"+name, &errno)()
	if name == RefreshFile {
		c.fs.controlFileAttr(ctx, &out.Attr, name)
		return c.NewInode(ctx, &refreshFile{fs: c.fs}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: controlIno(name, false)}), 0
	}
	if name != StatusFile && name != StatusJSONFile {
		return nil, syscall.ENOENT
	}
	c.fs.controlFileAttr(ctx, &out.Attr, name)
	return c.NewInode(ctx, &controlFile{fs: c.fs, name: name},
		fs.StableAttr{Mode: syscall.S_IFREG, Ino: controlIno(name, false)}), 0
}

func (c *controlDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream([]fuse.DirEntry{
		{Name: RefreshFile, Mode: syscall.S_IFREG, Ino: controlIno(RefreshFile, false)},
		{Name: StatusFile, Mode: syscall.S_IFREG, Ino: controlIno(StatusFile, false)},
		{Name: StatusJSONFile, Mode: syscall.S_IFREG, Ino: controlIno(StatusJSONFile, false)},
	}), 0
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
	defer n.fs.op(ctx, "getattr", "", ControlDir+"/"+n.name, &errno)()
	n.fs.controlFileAttr(ctx, &out.Attr, n.name)
	return 0
}

func (*controlFile) Setattr(context.Context, fs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EPERM
}

// Open makes the content: each open sees the mount as it is then, and
// keeps that one snapshot however it reads it.
func (n *controlFile) Open(ctx context.Context, flags uint32) (_ fs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.fs.op(ctx, "open", "", ControlDir+"/"+n.name, &errno)()
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&(syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EPERM
	}
	text, js := n.fs.cfg.Status()
	data := text
	if n.name == StatusJSONFile {
		data = js
	}
	return &controlHandle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

func (h *controlHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
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
