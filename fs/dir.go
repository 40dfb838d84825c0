package fs

import (
	"context"
	"strings"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
)

// dirNode is a directory: a bucket's root (prefix "") or a common prefix.
type dirNode struct {
	gofs.Inode
	fs     *FS
	bucket string
	at     string // the prefix it was made for: "" or ending in "/"
	// moved is the prefix it has had since a rename of it or of a
	// directory above it (rename.go): the kernel keeps this inode under
	// the new name until the old entries are dropped.
	moved atomic.Pointer[string]
}

// dir is the directory's prefix: "" or ending in "/".
func (d *dirNode) dir() string {
	if p := d.moved.Load(); p != nil {
		return *p
	}
	return d.at
}

var (
	_ gofs.NodeLookuper       = (*dirNode)(nil)
	_ gofs.NodeGetattrer      = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler = (*dirNode)(nil)
	_ gofs.NodeStatfser       = (*dirNode)(nil)
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileLookuper       = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
)

func (d *dirNode) key() string { return strings.TrimSuffix(d.dir(), "/") }

func (d *dirNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer d.fs.track(ctx, "getattr", d.bucket, d.dir())()
	defer d.fs.guard("getattr", d.bucket, d.dir(), &errno)
	d.fs.dirAttr(&out.Attr, d.bucket, d.key())
	return 0
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// Lookup resolves one name. A name ending in ShadowSuffix that is not a key
// itself names the object hidden by a directory of the same name.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer d.fs.track(ctx, "lookup", d.bucket, d.dir()+name)()
	defer d.fs.guard("lookup", d.bucket, d.dir()+name, &errno)
	if d.reserved(name) {
		return d.fs.lookupControl(ctx, d.EmbeddedInode(), name, out), 0
	}
	if !usable(name) {
		return nil, syscall.ENOENT
	}
	key := d.dir() + name
	if in := d.lookupWriting(ctx, key, out); in != nil {
		return in, 0 // a file being written (write.go)
	}
	n, err := d.fs.cache.Lookup(ctx, d.bucket, key)
	if toErrno(err) == syscall.ENOENT && strings.HasSuffix(name, ShadowSuffix) {
		base := strings.TrimSuffix(key, ShadowSuffix)
		if bn, berr := d.fs.cache.Lookup(ctx, d.bucket, base); berr == nil && bn.Kind.Has(cache.KindFile|cache.KindDir) {
			return d.fs.newFile(ctx, d.EmbeddedInode(), d.bucket, name, bn.Object, &out.Attr), 0
		}
	}
	if err != nil {
		return nil, d.fs.fail("lookup", d.bucket, key, err)
	}
	if n.Kind.Has(cache.KindDir) {
		d.fs.dirAttr(&out.Attr, d.bucket, key)
		return d.fs.newDir(ctx, d.EmbeddedInode(), d.bucket, key+"/"), 0
	}
	d.fs.fileLookupAt.Store(d.fs.cfg.Now().UnixNano()) // someone stats files: see Config.PlusFiles
	return d.fs.newFile(ctx, d.EmbeddedInode(), d.bucket, name, n.Object, &out.Attr), 0
}

func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer d.fs.track(ctx, "opendir", d.bucket, d.dir())()
	defer d.fs.guard("opendir", d.bucket, d.dir(), &errno)
	return &dirHandle{d: d, r: d.fs.cache.ReadDir(d.bucket, d.dir())}, 0, 0
}

// dirHandle streams one directory as the kernel reads it; pages of the
// listing are fetched only when the kernel asks for more.
type dirHandle struct {
	d      *dirNode
	r      *cache.DirReader
	queue  []cache.DirEntry // the file halves of names that are both, shown after everything else
	last   cache.DirEntry   // the entry Readdirent produced last, for Lookup
	shadow bool             // last is the file hidden by a directory
	// taken holds the names ending in ShadowSuffix that real keys gave
	// this directory; the shadowed files come last, so all are known by
	// then (a listing from the server and one from the cache do not
	// order "x", "x.bucketfs-file" and "x/" alike).
	taken map[string]bool
	done  bool // the listing is exhausted: only the queue is left
}

func (h *dirHandle) Readdirent(ctx context.Context) (_ *fuse.DirEntry, errno syscall.Errno) {
	defer h.d.fs.track(ctx, "readdir", h.d.bucket, h.d.dir())()
	defer h.d.fs.guard("readdir", h.d.bucket, h.d.dir(), &errno)
	for {
		var e cache.DirEntry
		shadow := false
		if !h.done {
			var ok bool
			var err error
			e, ok, err = h.r.Next(ctx)
			if err != nil {
				return nil, h.d.fs.fail("readdir", h.d.bucket, h.d.dir(), err)
			}
			h.done = !ok
		}
		if h.done {
			if len(h.queue) == 0 {
				return nil, 0
			}
			e, h.queue, shadow = h.queue[0], h.queue[1:], true
		}
		if !usable(e.Name) {
			h.d.fs.hide(h.d.bucket, h.d.dir()+e.Name, whyUnusable(e.Name))
			continue
		}
		if h.d.reserved(e.Name) {
			h.d.fs.hide(h.d.bucket, h.d.dir()+e.Name, "the mount root's "+ControlDir+" is bucketfs's control directory")
			continue
		}
		key := h.d.dir() + e.Name
		if !shadow && strings.HasSuffix(e.Name, ShadowSuffix) {
			if h.taken == nil {
				h.taken = map[string]bool{}
			}
			h.taken[e.Name] = true
		}
		switch {
		case shadow:
			name := e.Name + ShadowSuffix
			if len(name) > maxName {
				h.d.fs.hide(h.d.bucket, key, "shadowed by a directory and name too long for the suffix")
				continue
			}
			if h.taken[name] {
				h.d.fs.hide(h.d.bucket, key, "shadowed by a directory, and a real key has the name "+name)
				continue
			}
			h.last, h.shadow = e, true
			return &fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: fileIno(h.d.bucket, e.Object)}, 0
		case e.Kind.Has(cache.KindDir):
			if e.Kind.Has(cache.KindFile) {
				h.queue = append(h.queue, e)
			}
			h.last, h.shadow = e, false
			return &fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: ino(h.d.bucket, key, true)}, 0
		default:
			h.last, h.shadow = e, false
			return &fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFREG, Ino: fileIno(h.d.bucket, e.Object)}, 0
		}
	}
}

// Lookup serves READDIRPLUS from the entry just produced: the listing
// already told us everything, so no request is sent.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer h.d.fs.track(ctx, "readdirplus", h.d.bucket, h.d.dir()+name)()
	defer h.d.fs.guard("readdirplus", h.d.bucket, h.d.dir()+name, &errno)
	e := h.last
	key := h.d.dir() + e.Name
	parent := h.d.EmbeddedInode()
	if !h.shadow && e.Kind.Has(cache.KindDir) {
		h.d.fs.dirAttr(&out.Attr, h.d.bucket, key)
		return h.d.fs.newDir(ctx, parent, h.d.bucket, key+"/"), 0
	}
	if !h.d.fs.plusFile() {
		// Zero node ID: the kernel takes the name without attributes.
		return nil, syscall.EAGAIN
	}
	return h.d.fs.newFile(ctx, parent, h.d.bucket, name, e.Object, &out.Attr), 0
}

// Seekdir supports rewinddir; go-fuse itself replays an interrupted read.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) (errno syscall.Errno) {
	defer h.d.fs.track(ctx, "seekdir", h.d.bucket, h.d.dir())()
	defer h.d.fs.guard("seekdir", h.d.bucket, h.d.dir(), &errno)
	if off != 0 {
		return syscall.ENOTSUP
	}
	h.r = h.d.fs.cache.ReadDir(h.d.bucket, h.d.dir())
	h.queue, h.taken, h.done = nil, nil, false
	return 0
}

// bucketsNode is the root of an all-buckets mount: one directory per bucket.
type bucketsNode struct {
	gofs.Inode
	fs *FS
}

var (
	_ gofs.NodeLookuper       = (*bucketsNode)(nil)
	_ gofs.NodeGetattrer      = (*bucketsNode)(nil)
	_ gofs.NodeOpendirHandler = (*bucketsNode)(nil)
	_ gofs.NodeStatfser       = (*bucketsNode)(nil)
	_ gofs.FileReaddirenter   = (*bucketsHandle)(nil)
	_ gofs.FileLookuper       = (*bucketsHandle)(nil)
	_ gofs.FileSeekdirer      = (*bucketsHandle)(nil)
)

func (b *bucketsNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer b.fs.track(ctx, "getattr", "", "")()
	defer b.fs.guard("getattr", "", "", &errno)
	b.fs.dirAttr(&out.Attr, "", "")
	out.Ino = 1
	return 0
}

func (b *bucketsNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// Lookup finds a bucket by name. Buckets that ListBuckets does not return
// (no s3:ListAllMyBuckets) are still reachable: a one-key LIST says whether
// the bucket exists and may be read.
func (b *bucketsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer b.fs.track(ctx, "lookup", name, "")()
	defer b.fs.guard("lookup", name, "", &errno)
	if in := b.fs.lookupControl(ctx, b.EmbeddedInode(), name, out); in != nil {
		return in, 0
	}
	if !validBucketName(name) {
		return nil, syscall.ENOENT
	}
	listed := false
	if bs, err := b.fs.cache.Buckets(ctx); err == nil {
		for _, bk := range bs {
			if bk.Name == name {
				listed = true
				break
			}
		}
	}
	if !listed {
		if err := b.fs.cache.CheckBucket(ctx, name); err != nil {
			return nil, b.fs.fail("lookup", name, "", err)
		}
	}
	b.fs.dirAttr(&out.Attr, name, "")
	return b.fs.newDir(ctx, b.EmbeddedInode(), name, ""), 0
}

func (b *bucketsNode) OpendirHandle(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer b.fs.track(ctx, "opendir", "", "")()
	defer b.fs.guard("opendir", "", "", &errno)
	bs, err := b.fs.cache.Buckets(ctx)
	if err != nil {
		return nil, 0, b.fs.fail("listbuckets", "", "", err)
	}
	names := make([]string, 0, len(bs))
	for _, bk := range bs {
		if usable(bk.Name) {
			names = append(names, bk.Name)
		}
	}
	return &bucketsHandle{b: b, names: names}, 0, 0
}

// bucketsHandle lists the buckets fetched when the root was opened.
type bucketsHandle struct {
	b     *bucketsNode
	names []string
	pos   int
}

func (h *bucketsHandle) Readdirent(ctx context.Context) (_ *fuse.DirEntry, errno syscall.Errno) {
	defer h.b.fs.track(ctx, "readdir", "", "")()
	defer h.b.fs.guard("readdir", "", "", &errno)
	if h.pos >= len(h.names) {
		return nil, 0
	}
	name := h.names[h.pos]
	h.pos++
	return &fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: ino(name, "", true)}, 0
}

func (h *bucketsHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer h.b.fs.track(ctx, "readdirplus", name, "")()
	defer h.b.fs.guard("readdirplus", name, "", &errno)
	h.b.fs.dirAttr(&out.Attr, name, "")
	return h.b.fs.newDir(ctx, h.b.EmbeddedInode(), name, ""), 0
}

func (h *bucketsHandle) Seekdir(ctx context.Context, off uint64) (errno syscall.Errno) {
	defer h.b.fs.track(ctx, "seekdir", "", "")()
	defer h.b.fs.guard("seekdir", "", "", &errno)
	if off > uint64(len(h.names)) {
		return syscall.EINVAL
	}
	h.pos = int(off)
	return 0
}
