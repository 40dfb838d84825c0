package fs

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// Creating and removing names: create stages an empty file (uploaded at
// close), mkdir stores a "dir/" marker, unlink deletes the object, rmdir
// deletes the marker of an empty directory. Deletes ask the delete guard
// first (deletecheck.go).

var (
	_ gofs.NodeCreater   = (*dirNode)(nil)
	_ gofs.NodeMkdirer   = (*dirNode)(nil)
	_ gofs.NodeUnlinker  = (*dirNode)(nil)
	_ gofs.NodeRmdirer   = (*dirNode)(nil)
	_ gofs.NodeRenamer   = (*dirNode)(nil)
	_ gofs.NodeSetattrer = (*dirNode)(nil)
	_ gofs.NodeSetattrer = (*fileNode)(nil)
)

// requestContext bounds one metadata request with the cache's timeout.
func (f *FS) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.cache.Config().RequestTimeout)
}

// Create makes a new file. Nothing reaches S3 until the file is closed;
// then the object is created only if no other writer created it in the
// meantime (If-None-Match: *).
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (_ *gofs.Inode, _ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer d.fs.track(ctx, "create", d.bucket, d.dir()+name)()
	defer d.fs.guard("create", d.bucket, d.dir()+name, &errno)
	if !d.fs.writable() {
		return nil, nil, 0, syscall.EROFS
	}
	if !usable(name) || strings.HasSuffix(name, ShadowSuffix) {
		return nil, nil, 0, syscall.EINVAL
	}
	key := d.dir() + name
	w := d.fs.writes.get(d.bucket, key)
	if w == nil {
		w = &wfile{fs: d.fs, ino: d.fs.newIno(d.bucket, key), bucket: d.bucket, key: key, obj: store.Object{}, created: true}
		if _, err := w.stage(ctx, true); err != nil {
			return nil, nil, 0, w.fail("create", err)
		}
		w.changed() // even an empty file is created at close
		if r := w.register(); r != w {
			w.closeHandle()
			w = r
		}
	}
	h, fuseFlags, errno := w.open(ctx, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	w.attr(&out.Attr)
	return d.fileInode(ctx, w), h, fuseFlags, 0
}

// Mkdir stores the marker "key/", so the directory exists while empty.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer d.fs.track(ctx, "mkdir", d.bucket, d.dir()+name)()
	defer d.fs.guard("mkdir", d.bucket, d.dir()+name, &errno)
	if !d.fs.writable() {
		return nil, syscall.EROFS
	}
	if !usable(name) {
		return nil, syscall.EINVAL
	}
	key := d.dir() + name
	rctx, cancel := d.fs.requestContext(ctx)
	defer cancel()
	o, err := d.fs.cfg.Writer.PutIf(rctx, d.bucket, key+"/", bytes.NewReader(nil), 0, store.PutOptions{IfAbsent: true})
	if errors.Is(err, store.ErrUnsupported) {
		o, err = d.fs.cfg.Writer.Put(rctx, d.bucket, key+"/", bytes.NewReader(nil), 0)
	}
	switch {
	case errors.Is(err, store.ErrExists):
		return nil, syscall.EEXIST
	case err != nil:
		return nil, d.fs.writeFail("mkdir", d.bucket, key, err)
	}
	d.fs.deletes.wrote(d.bucket, key+"/", o.ETag)
	d.fs.cache.MadeDir(d.bucket, key)
	d.fs.dirAttr(&out.Attr, d.bucket, key)
	return d.fs.newDir(ctx, d.EmbeddedInode(), d.bucket, key+"/"), 0
}

// fileKey is the key of the file a name shows: the name itself, or for
// "x" + ShadowSuffix that is not a key of its own, the object "x" that a
// directory "x" hides.
func (d *dirNode) fileKey(ctx context.Context, name string) string {
	key := d.dir() + name
	if !strings.HasSuffix(name, ShadowSuffix) || d.fs.writes.get(d.bucket, key) != nil {
		return key
	}
	if n, err := d.fs.cache.Lookup(ctx, d.bucket, key); err == nil && n.Kind.Has(cache.KindFile) {
		return key
	}
	base := strings.TrimSuffix(key, ShadowSuffix)
	if n, err := d.fs.cache.Lookup(ctx, d.bucket, base); err == nil && n.Kind.Has(cache.KindFile|cache.KindDir) {
		return base
	}
	return key
}

// Unlink deletes the object. A file still open keeps its staged bytes
// for its readers and writers, but nothing more is uploaded.
func (d *dirNode) Unlink(ctx context.Context, name string) (errno syscall.Errno) {
	defer d.fs.track(ctx, "unlink", d.bucket, d.dir()+name)()
	defer d.fs.guard("unlink", d.bucket, d.dir()+name, &errno)
	if d.reserved(name) {
		return syscall.EPERM // the control directory (control.go)
	}
	if !d.fs.writable() {
		return syscall.EROFS
	}
	key := d.fileKey(ctx, name)
	w := d.fs.writes.get(d.bucket, key)
	gone := false
	if d.fs.guarded() && (w == nil || !w.isCreated()) {
		o, errno := d.fs.deletable(ctx, "unlink", d.bucket, key)
		if errno != 0 {
			return errno
		}
		gone = o.Key == "" // nothing left to delete
	}
	neverUploaded := false
	if w != nil {
		w.mu.Lock()
		w.unlinked = true
		neverUploaded = w.created
		st := w.st
		w.mu.Unlock()
		if st != nil {
			st.SetTarget("", "")
		}
		d.fs.writes.remove(w)
		w.closeIfIdle()
	}
	if !neverUploaded && !gone {
		// A file created here and never uploaded has no object: the key
		// may hold another writer's, which is not ours to delete.
		rctx, cancel := d.fs.requestContext(ctx)
		defer cancel()
		if err := d.fs.cfg.Writer.Delete(rctx, d.bucket, key); err != nil {
			return d.fs.writeFail("unlink", d.bucket, key, err)
		}
	}
	d.fs.deletes.removed(d.bucket, key)
	d.fs.cache.Removed(d.bucket, key)
	return 0
}

// isCreated reports whether w was created here and never uploaded: it has
// no object of its own yet.
func (w *wfile) isCreated() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.created
}

// closeIfIdle frees the staging file of an unlinked file nobody has open.
func (w *wfile) closeIfIdle() {
	w.mu.Lock()
	st := w.st
	idle := w.handles == 0
	if idle {
		w.st = nil
	}
	w.mu.Unlock()
	if idle && st != nil {
		st.Remove()
	}
}

// Rmdir removes an empty directory: its marker, if it has one. A
// directory with any key below it (or a file being written there) is not
// empty.
func (d *dirNode) Rmdir(ctx context.Context, name string) (errno syscall.Errno) {
	defer d.fs.track(ctx, "rmdir", d.bucket, d.dir()+name)()
	defer d.fs.guard("rmdir", d.bucket, d.dir()+name, &errno)
	if d.reserved(name) {
		return syscall.EPERM // the control directory (control.go)
	}
	if !d.fs.writable() {
		return syscall.EROFS
	}
	key := d.dir() + name
	if len(d.fs.writes.under(d.bucket, key+"/")) > 0 {
		return syscall.ENOTEMPTY
	}
	objs, _, err := d.fs.cache.ListTree(ctx, d.bucket, key+"/", 2)
	if err != nil {
		return d.fs.fail("rmdir", d.bucket, key, err)
	}
	var marker *store.Object
	for i, o := range objs {
		if o.Key != key+"/" {
			return syscall.ENOTEMPTY
		}
		marker = &objs[i]
	}
	if marker != nil {
		// Only the marker is left: deleting it is a delete like any other.
		if d.fs.guarded() {
			if errno := d.fs.listedDeletable("rmdir", d.bucket, *marker); errno != 0 {
				return errno
			}
		}
		rctx, cancel := d.fs.requestContext(ctx)
		defer cancel()
		if err := d.fs.cfg.Writer.Delete(rctx, d.bucket, key+"/"); err != nil {
			return d.fs.writeFail("rmdir", d.bucket, key, err)
		}
		d.fs.deletes.removed(d.bucket, key+"/")
	}
	d.fs.cache.RemovedDir(d.bucket, key)
	return 0
}

// Setattr on a directory: S3 keeps no times or modes for prefixes; accept
// and ignore them (touch DIR, cp -rp).
func (d *dirNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer d.fs.track(ctx, "setattr", d.bucket, d.dir())()
	defer d.fs.guard("setattr", d.bucket, d.dir(), &errno)
	if !d.fs.writable() {
		return syscall.EROFS
	}
	d.fs.dirAttr(&out.Attr, d.bucket, d.key())
	return 0
}
