package namespace

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// MaxDirRename is the most objects a directory rename copies. S3 has no
// rename: each object is copied, then the originals deleted. Above this a
// rename fails with ErrCrossDevice (EXDEV), which makes mv copy and delete
// file by file (R's file.rename does not fall back: it reports the
// failure).
const MaxDirRename = 1000

// Move is a directory rename done: Follow points what the kernel still
// holds under the old name at the new keys.
type Move struct {
	src, dst string                  // prefixes, ending in "/"
	made     map[string]store.Object // the copies, by key
	id       Identity                // who renamed it (identity.go)
}

// Follow points the directory or file e at its new key (dir, file).
func (m *Move) Follow(e Entry) {
	switch {
	case e.Dir != nil:
		m.dir(e.Dir)
	case e.File != nil:
		m.file(e.File)
	}
}

// dir points d, if it is at or below the renamed directory, at its new
// prefix: it lists the new keys from now on.
func (m *Move) dir(d *Dir) {
	if p := d.Prefix(); strings.HasPrefix(p, m.src) {
		np := m.dst + strings.TrimPrefix(p, m.src)
		d.moved.Store(&np)
	}
}

// file points f, if it is below the renamed directory, at its copy. On a
// mount of many identities only the renamer's files being written follow:
// an object's inode stays its version's (a reader of it gets ESTALE, as
// after a rename by another host), and a file another user is writing is
// theirs (it is uploaded under its old name).
func (m *Move) file(f *File) {
	w := f.ov.Load()
	switch {
	case w == nil && f.ns.scoped():
		return
	case w == nil:
		w = f.overlay(m.id)
	case f.ns.scoped() && w.id.Key != m.id.Key:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.HasPrefix(w.key, m.src) {
		w.key = m.dst + strings.TrimPrefix(w.key, m.src)
		if o, ok := m.made[w.key]; ok {
			w.obj = o
		}
	}
}

// The flags of renameat2(2).
const (
	RenameNoReplace = 1 << 0
	RenameExchange  = 1 << 1
)

// RenameFlags reads the flags of renameat2(2): RenameNoReplace, or
// RenameExchange, which S3 cannot do (ErrInvalid).
func RenameFlags(flags uint32) (noReplace bool, err error) {
	if flags&RenameExchange != 0 {
		return false, ErrInvalid
	}
	return flags&RenameNoReplace != 0, nil
}

// Rename moves name in d to newName in to: a file (CopyObject, then
// DeleteObject: the new name appears whole) or a directory of up to
// MaxDirRename objects, whose Move it returns. known is what the caller
// already knows name to be (Entry{} when nothing): a directory, or the
// File whose reads must follow the rename. noReplace fails with ErrExist
// when newName exists.
func (d *Dir) Rename(ctx context.Context, name string, to *Dir, newName string, noReplace bool, known Entry) (*Move, error) {
	if d.Reserved(name) || to.Reserved(newName) {
		return nil, ErrNotPermitted
	}
	if d.control || to.control {
		return nil, ErrControl
	}
	if err := d.fixed(); err != nil {
		return nil, err
	}
	if to.bucket == "" {
		return nil, ErrCrossDevice
	}
	if err := d.ns.checkWritable(); err != nil {
		return nil, err
	}
	if to.bucket != d.bucket {
		return nil, ErrCrossDevice
	}
	if err := checkNewName(newName); err != nil {
		return nil, err
	}
	ns := d.ns
	ctx, o, err := ns.caller(ctx)
	if err != nil {
		return nil, err
	}
	src, dst := d.Prefix()+name, to.Prefix()+newName
	if noReplace {
		if _, err := ns.cache.Lookup(ctx, d.bucket, dst); err == nil || ns.writes.get(o.Key, d.bucket, dst) != nil {
			return nil, ErrExist
		}
	}
	isDir := known.Dir != nil
	if known.Dir == nil && known.File == nil && ns.writes.get(o.Key, d.bucket, src) == nil {
		n, err := ns.cache.Lookup(ctx, d.bucket, src)
		if err != nil {
			return nil, err
		}
		isDir = n.Kind.Has(cache.KindDir)
	}
	if isDir {
		return ns.renameDir(ctx, o, d.bucket, src, dst)
	}
	return nil, ns.renameFile(ctx, o, d.bucket, d.fileKey(ctx, name), dst, known.File)
}

func (ns *NS) renameFile(ctx context.Context, id Identity, bucket, src, dst string, f *File) error {
	w := ns.writes.get(id.Key, bucket, src)
	if w == nil && f != nil {
		w = f.ov.Load()
		if w != nil {
			if err := w.mayUse(ctx); err != nil {
				return err
			}
		}
	}
	if w != nil {
		// Staged bytes go up first, under the old name, so the copy is
		// the file as written; the upload lock keeps them from moving.
		if err := w.upMu.lock(ctx); err != nil {
			return context.Canceled
		}
		defer w.upMu.unlock()
		if err := w.uploadLocked(ctx); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, ns.cache.Config().RequestTimeout*4)
	defer cancel()
	var etag string
	if w != nil {
		w.mu.Lock()
		etag = w.obj.ETag
		w.mu.Unlock()
	}
	if ns.guarded() {
		// The rename deletes the source: only one this mount wrote, and
		// the copy is pinned to the ETag the guard checked.
		cur, err := ns.deletable(rctx, id.Key, "rename", bucket, src)
		if err != nil {
			return err
		}
		if cur.Key == "" {
			return store.ErrNotFound
		}
		etag = cur.ETag
	}
	o, err := ns.w.Copy(rctx, bucket, src, etag, dst)
	if errors.Is(err, store.ErrChanged) && etag != "" {
		if ns.guarded() {
			ns.deletes.refuse("rename", bucket, src, "replaced by another writer since this mount wrote it")
			return ErrNotPermitted
		}
		// Someone replaced the source since we wrote it: rename theirs.
		o, err = ns.w.Copy(rctx, bucket, src, "", dst)
	}
	if err != nil {
		return err
	}
	ns.deletes.wrote(id.Key, bucket, dst, o.ETag)
	if err := ns.w.Delete(rctx, bucket, src); err != nil {
		ns.log.Warn("rename: copied, but the old name could not be deleted; both exist now", "bucket", bucket, "from", src, "to", dst, "err", err)
		return err
	}
	ns.deletes.removed(id.Key, bucket, src)
	if o.ModTime.IsZero() {
		o.ModTime = ns.cfg.Now()
	}
	// A file being written under the new name is replaced: it uploads
	// nothing more.
	if old := ns.writes.get(id.Key, bucket, dst); old != nil && old != w {
		old.drop()
	}
	if f != nil && !ns.scoped() {
		// The kernel moves f's inode to the new name; it must read the
		// new key from now on. It may be another inode than the one the
		// file was written through (a listing made a new one for the name
		// meanwhile): it shares the file's state then.
		if w == nil {
			w = f.overlay(id)
		} else {
			f.ov.CompareAndSwap(nil, w)
		}
	}
	if w != nil {
		ns.writes.remove(w)
		w.mu.Lock()
		w.key, w.obj = dst, o
		st, keep := w.st, w.handles > 0 || w.dirty
		w.mu.Unlock()
		if st != nil {
			st.SetTarget(bucket, dst)
			st.Rebase(dst, o.ETag) // bytes not fetched are the copy's now
		}
		if keep {
			w.register()
		}
	}
	return nil
}

// releaseWait is how long a directory rename waits for files below it that
// are uploaded but still open: the kernel releases a file asynchronously
// after close(2) returned, so `cp f dir/ && mv dir dir2` finds it open for a
// moment.
const releaseWait = 2 * time.Second

// waitReleased returns nil once no file below prefix is open, ErrBusy if one
// has bytes not uploaded yet or stays open past releaseWait, or ctx's error.
func (ns *NS) waitReleased(ctx context.Context, id Identity, bucket, prefix string) error {
	var deadline <-chan time.Time
	for {
		open := false
		for _, w := range ns.writes.under(id.Key, bucket, prefix) {
			w.mu.Lock()
			dirty, handles := w.dirty, w.handles
			w.mu.Unlock()
			if dirty {
				return ErrBusy
			}
			open = open || handles > 0
		}
		if !open {
			return nil
		}
		if deadline == nil {
			t := time.NewTimer(releaseWait)
			defer t.Stop()
			deadline = t.C
		}
		poll := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			poll.Stop()
			return ctx.Err()
		case <-deadline:
			poll.Stop()
			return ErrBusy
		case <-poll.C:
		}
	}
}

// renameDir copies every object below src/ to dst/, then deletes the
// originals: a failure midway leaves every byte under at least one name.
func (ns *NS) renameDir(ctx context.Context, id Identity, bucket, src, dst string) (*Move, error) {
	if err := ns.waitReleased(ctx, id, bucket, src+"/"); err != nil {
		return nil, err
	}
	objs, more, err := ns.listTree(ctx, bucket, src+"/", MaxDirRename)
	if err != nil {
		return nil, err
	}
	if more {
		ns.log.Info("directory too large to rename on S3; refused with EXDEV so mv copies it file by file",
			"bucket", bucket, "dir", src, "limit", MaxDirRename)
		return nil, ErrCrossDevice
	}
	existing, _, err := ns.listTree(ctx, bucket, dst+"/", 2)
	if err != nil {
		return nil, err
	}
	for _, o := range existing {
		if o.Key != dst+"/" {
			return nil, ErrNotEmpty
		}
	}
	if len(objs) == 0 {
		return nil, store.ErrNotFound
	}
	if ns.guarded() {
		// The rename deletes every object below src: all must be this
		// mount's, with the ETags listed, to which the copies are pinned.
		for _, o := range objs {
			if err := ns.listedDeletable(id.Key, "rename", bucket, o); err != nil {
				return nil, err
			}
		}
	}
	rctx, cancel := context.WithTimeout(ctx, ns.cache.Config().RequestTimeout*time.Duration(1+len(objs)/8))
	defer cancel()
	var mu sync.Mutex
	made := make(map[string]store.Object, len(objs))
	copied := func() error {
		return parallel(rctx, objs, func(ctx context.Context, o store.Object) error {
			k := dst + "/" + strings.TrimPrefix(o.Key, src+"/")
			n, err := ns.w.Copy(ctx, bucket, o.Key, o.ETag, k)
			if err == nil {
				n.Key = k
				if n.ModTime.IsZero() {
					n.ModTime = ns.cfg.Now()
				}
				ns.deletes.wrote(id.Key, bucket, k, n.ETag)
				mu.Lock()
				made[k] = n
				mu.Unlock()
			}
			return err
		})
	}
	// Whatever happens, the writer keeps both trees true (Keeper.Tree).
	if err := ns.w.Tree(bucket, copied, src, dst); err != nil {
		return nil, err
	}
	if err := ns.w.Tree(bucket, func() error {
		return parallel(rctx, objs, func(ctx context.Context, o store.Object) error {
			err := ns.w.Delete(ctx, bucket, o.Key)
			if err == nil {
				ns.deletes.removed(id.Key, bucket, o.Key)
			}
			return err
		})
	}, src, dst); err != nil {
		ns.log.Warn("rename: copied, but not every old object could be deleted; they exist under both names", "bucket", bucket, "from", src, "to", dst, "err", err)
		return nil, err
	}
	return &Move{src: src + "/", dst: dst + "/", made: made, id: id}, nil
}

// renameParallel bounds the copies (then the deletes) of a directory
// rename in flight.
const renameParallel = 8

// parallel runs fn on every object, renameParallel at a time; the first
// error cancels the others and is returned.
func parallel(ctx context.Context, objs []store.Object, fn func(context.Context, store.Object) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(renameParallel)
	for _, o := range objs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another one failed
			}
			return fn(gctx, o)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err() // not every object was done if the caller gave up
}
