package fs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// MaxDirRename is the most objects a directory rename copies. S3 has no
// rename: each object is copied, then the originals deleted. Above this
// rename(2) fails with EXDEV, which makes mv copy and delete file by file
// (R's file.rename does not fall back: it reports the failure).
const MaxDirRename = 1000

// renameFlagNoReplace is RENAME_NOREPLACE of renameat2(2).
const renameFlagNoReplace = 0x1

// Rename moves a file (CopyObject, then DeleteObject: the new name
// appears whole) or a directory of up to MaxDirRename objects. Between
// buckets it fails with EXDEV.
func (d *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) (errno syscall.Errno) {
	defer d.fs.track(ctx, "rename", d.bucket, d.dir()+name)()
	defer d.fs.guard("rename", d.bucket, d.dir()+name, &errno)
	if d.renamesControl(name, newParent, newName) {
		return syscall.EPERM // the control directory (control.go)
	}
	if !d.fs.writable() {
		return syscall.EROFS
	}
	np, ok := newParent.(*dirNode)
	if !ok || np.bucket != d.bucket {
		return syscall.EXDEV
	}
	if flags&gofs.RENAME_EXCHANGE != 0 {
		return syscall.EINVAL
	}
	if !usable(newName) || strings.HasSuffix(newName, ShadowSuffix) {
		return syscall.EINVAL
	}
	dst := np.dir() + newName
	if flags&renameFlagNoReplace != 0 {
		if _, err := d.fs.cache.Lookup(ctx, d.bucket, dst); err == nil || d.fs.writes.get(d.bucket, dst) != nil {
			return syscall.EEXIST
		}
	}
	child := d.GetChild(name)
	isDir := child != nil && child.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR
	if child == nil && d.fs.writes.get(d.bucket, d.dir()+name) == nil {
		n, err := d.fs.cache.Lookup(ctx, d.bucket, d.dir()+name)
		if err != nil {
			return d.fs.fail("rename", d.bucket, d.dir()+name, err)
		}
		isDir = n.Kind.Has(cache.KindDir)
	}
	if isDir {
		var moved map[string]store.Object
		moved, errno = d.renameDir(ctx, d.dir()+name, dst)
		if errno == 0 && child != nil {
			// Until the kernel drops the old entries (below), it keeps
			// using this inode and those under it, now under the new
			// name: they read and list the new keys from this moment.
			d.fs.moveTree(child, d.dir()+name+"/", dst+"/", moved)
		}
		if errno == 0 {
			// The kernel moves the directory's inode to the new name, but
			// that inode (and those below it) still know the old keys:
			// drop both names, so the next access looks them up afresh.
			// Not from inside RENAME, which holds the directories' locks.
			go func() {
				d.NotifyEntry(name)
				np.NotifyEntry(newName)
			}()
		}
		return errno
	}
	src := d.fileKey(ctx, name)
	var node *fileNode
	if child != nil {
		node, _ = child.Operations().(*fileNode)
	}
	return d.renameFile(ctx, src, dst, node)
}

func (d *dirNode) renameFile(ctx context.Context, src, dst string, node *fileNode) syscall.Errno {
	f := d.fs
	w := f.writes.get(d.bucket, src)
	if w == nil && node != nil {
		w = node.ov.Load()
	}
	if w != nil {
		// Staged bytes go up first, under the old name, so the copy is
		// the file as written; the upload lock keeps them from moving.
		if err := w.upMu.lock(ctx); err != nil {
			return syscall.EINTR
		}
		defer w.upMu.unlock()
		if errno := w.uploadLocked(ctx, "rename"); errno != 0 {
			return errno
		}
	}
	rctx, cancel := context.WithTimeout(ctx, f.cache.Config().RequestTimeout*4)
	defer cancel()
	var etag string
	if w != nil {
		w.mu.Lock()
		etag = w.obj.ETag
		w.mu.Unlock()
	}
	if f.guarded() {
		// The rename deletes the source: only one this mount wrote, and
		// the copy is pinned to the ETag the guard checked.
		cur, errno := f.deletable(rctx, "rename", d.bucket, src)
		if errno != 0 {
			return errno
		}
		if cur.Key == "" {
			return syscall.ENOENT
		}
		etag = cur.ETag
	}
	o, err := f.cfg.Writer.Copy(rctx, d.bucket, src, etag, dst)
	if errors.Is(err, store.ErrChanged) && etag != "" {
		if f.guarded() {
			f.deletes.refuse("rename", d.bucket, src, "replaced by another writer since this mount wrote it")
			return syscall.EPERM
		}
		// Someone replaced the source since we wrote it: rename theirs.
		o, err = f.cfg.Writer.Copy(rctx, d.bucket, src, "", dst)
	}
	if err != nil {
		return f.writeFail("rename", d.bucket, src, err)
	}
	f.deletes.wrote(d.bucket, dst, o.ETag)
	if err := f.cfg.Writer.Delete(rctx, d.bucket, src); err != nil {
		f.log.Warn("rename: copied, but the old name could not be deleted; both exist now", "bucket", d.bucket, "from", src, "to", dst, "err", err)
		return f.writeFail("rename", d.bucket, src, err)
	}
	f.deletes.removed(d.bucket, src)
	if o.ModTime.IsZero() {
		o.ModTime = time.Now()
	}
	f.cache.Removed(d.bucket, src)
	f.cache.Wrote(d.bucket, o)
	// A file being written under the new name is replaced: it uploads
	// nothing more.
	if old := f.writes.get(d.bucket, dst); old != nil && old != w {
		old.mu.Lock()
		old.unlinked = true
		st := old.st
		old.mu.Unlock()
		if st != nil {
			st.SetTarget("", "")
		}
		f.writes.remove(old)
		old.closeIfIdle()
	}
	if node != nil {
		// The kernel moves this inode to the new name; it must read the
		// new key from now on. It may be another inode than the one the
		// file was written through (a listing made a new one for the
		// name meanwhile): it shares the file's state then.
		if w == nil {
			w = node.overlay()
		} else {
			node.ov.CompareAndSwap(nil, w)
		}
	}
	if w != nil {
		f.writes.remove(w)
		w.mu.Lock()
		w.key, w.obj = dst, o
		st, keep := w.st, w.handles > 0 || w.dirty
		w.mu.Unlock()
		if st != nil {
			st.SetTarget(d.bucket, dst)
		}
		if keep {
			w.register()
		}
	}
	return 0
}

// renameDir copies every object below src/ to dst/, then deletes the
// originals: a failure midway leaves every byte under at least one name.
// It returns the objects made, by key.
func (d *dirNode) renameDir(ctx context.Context, src, dst string) (map[string]store.Object, syscall.Errno) {
	f := d.fs
	for _, w := range f.writes.under(d.bucket, src+"/") {
		w.mu.Lock()
		busy := w.handles > 0 || w.dirty
		w.mu.Unlock()
		if busy {
			return nil, syscall.EBUSY
		}
	}
	objs, more, err := f.cache.ListTree(ctx, d.bucket, src+"/", MaxDirRename)
	if err != nil {
		return nil, f.fail("rename", d.bucket, src, err)
	}
	if more {
		f.log.Info("directory too large to rename on S3; refused with EXDEV so mv copies it file by file",
			"bucket", d.bucket, "dir", src, "limit", MaxDirRename)
		return nil, syscall.EXDEV
	}
	existing, _, err := f.cache.ListTree(ctx, d.bucket, dst+"/", 2)
	if err != nil {
		return nil, f.fail("rename", d.bucket, dst, err)
	}
	for _, o := range existing {
		if o.Key != dst+"/" {
			return nil, syscall.ENOTEMPTY
		}
	}
	if len(objs) == 0 {
		return nil, syscall.ENOENT
	}
	if f.guarded() {
		// The rename deletes every object below src: all must be this
		// mount's, with the ETags listed, to which the copies are pinned.
		for _, o := range objs {
			if errno := f.listedDeletable("rename", d.bucket, o); errno != 0 {
				return nil, errno
			}
		}
	}
	rctx, cancel := context.WithTimeout(ctx, f.cache.Config().RequestTimeout*time.Duration(1+len(objs)/8))
	defer cancel()
	var mu sync.Mutex
	made := make(map[string]store.Object, len(objs))
	if err := parallel(rctx, objs, func(ctx context.Context, o store.Object) error {
		k := dst + "/" + strings.TrimPrefix(o.Key, src+"/")
		n, err := f.cfg.Writer.Copy(ctx, d.bucket, o.Key, o.ETag, k)
		if err == nil {
			n.Key = k
			if n.ModTime.IsZero() {
				n.ModTime = time.Now()
			}
			f.deletes.wrote(d.bucket, k, n.ETag)
			mu.Lock()
			made[k] = n
			mu.Unlock()
		}
		return err
	}); err != nil {
		f.cache.ForgetTree(d.bucket, dst)
		return nil, f.writeFail("rename", d.bucket, src, err)
	}
	err = parallel(rctx, objs, func(ctx context.Context, o store.Object) error {
		err := f.cfg.Writer.Delete(ctx, d.bucket, o.Key)
		if err == nil {
			f.deletes.removed(d.bucket, o.Key)
		}
		return err
	})
	f.cache.ForgetTree(d.bucket, src)
	f.cache.ForgetTree(d.bucket, dst)
	if err != nil {
		f.log.Warn("rename: copied, but not every old object could be deleted; they exist under both names", "bucket", d.bucket, "from", src, "to", dst, "err", err)
		return nil, f.writeFail("rename", d.bucket, src, err)
	}
	return made, 0
}

// moveTree points the inodes of a renamed directory and everything below
// it that the kernel knows at their new keys (src and dst end in "/"):
// directories list the new prefix, files read the copies made (from the
// objects in made, by key).
func (f *FS) moveTree(in *gofs.Inode, src, dst string, made map[string]store.Object) {
	switch n := in.Operations().(type) {
	case *dirNode:
		p := dst + strings.TrimPrefix(n.dir(), src)
		n.moved.Store(&p)
	case *fileNode:
		w := n.overlay()
		w.mu.Lock()
		if strings.HasPrefix(w.key, src) {
			w.key = dst + strings.TrimPrefix(w.key, src)
			if o, ok := made[w.key]; ok {
				w.obj = o
			}
		}
		w.mu.Unlock()
	}
	for _, c := range in.Children() {
		f.moveTree(c, src, dst, made)
	}
}

// parallel runs fn on every object, 8 at a time, and returns the first
// error after all have run.
func parallel(ctx context.Context, objs []store.Object, fn func(context.Context, store.Object) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	for _, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, o); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
