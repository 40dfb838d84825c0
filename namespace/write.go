package namespace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Writing. A file opened for writing (or created) gets a wfile: its bytes
// are staged on local disk (package stage) and uploaded when a handle is
// flushed (close) or fsync'd, in one piece, so no reader ever sees half a
// file. Until then readers elsewhere see the old object or nothing; the
// mount itself reads the staged bytes through the same File. A failed
// upload fails that close or fsync and keeps the staged bytes, listed and
// readable under the name; the next flush, fsync or close retries, and
// Drain (at unmount) tries once more and leaves what it could not upload in
// the staging directory.

// writes is the registry of files being written, by writer (identity.go),
// bucket and key, so a lookup or listing of the name (by its owner) finds
// the staged file while it is open or holds bytes not yet uploaded.
type writes struct {
	mu    sync.Mutex
	files map[wkey]*wfile
	seq   atomic.Uint64 // for the inode numbers of created files
}

// wkey is a file's place in the registry: its writer's Identity.Key, its
// bucket and key (a struct, so a lookup builds no string).
type wkey struct{ owner, bucket, key string }

func (ws *writes) get(owner, bucket, key string) *wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.files[wkey{owner, bucket, key}]
}

// add registers w under its name unless another wfile holds it, which is
// returned instead.
func (ws *writes) add(w *wfile) *wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.files == nil {
		ws.files = map[wkey]*wfile{}
	}
	k := wkey{w.id.Key, w.bucket, w.key}
	if old := ws.files[k]; old != nil {
		return old
	}
	ws.files[k] = w
	return w
}

func (ws *writes) remove(w *wfile) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	k := wkey{w.id.Key, w.bucket, w.key}
	if ws.files[k] == w {
		delete(ws.files, k)
	}
}

// under returns the registered files of owner whose keys start with prefix.
func (ws *writes) under(owner, bucket, prefix string) []*wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var out []*wfile
	for _, w := range ws.files {
		if w.id.Key == owner && w.bucket == bucket && strings.HasPrefix(w.key, prefix) {
			out = append(out, w)
		}
	}
	return out
}

func (ws *writes) all() []*wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make([]*wfile, 0, len(ws.files))
	for _, w := range ws.files {
		out = append(out, w)
	}
	return out
}

// wfile is the mutable state of a file the mount writes or renamed.
type wfile struct {
	ns  *NS
	ino uint64   // the inode number of its File
	id  Identity // who writes it (identity.go); fixed

	// upMu serializes uploads and the renames that move the staged bytes.
	// It is held across the upload: waiters can be interrupted.
	upMu waitLock
	// matMu serializes staging (fetching the object into a staging file).
	// It is held across the fetch: waiters can be interrupted.
	matMu waitLock

	mu          sync.Mutex
	bucket, key string
	obj         store.Object // the object as last known (Key "" when there is none)
	created     bool         // created here and never uploaded: the first upload must not clobber another writer's object
	st          *stage.File  // staged bytes; nil when nothing is staged
	dirty       bool         // st differs from obj
	gen         uint64       // bumped on every change of st
	failedGen   uint64       // gen whose upload failed last (0: none)
	unlinked    bool         // the name is gone: nothing more is uploaded
	refused     error        // why the file is dropped (S3 refused the writer's upload, identity.go; or lost bytes, below)
	lost        lostRange    // bytes a write failed to stage (ENOSPC) and no later write replaced
	handles     int
	mtime       time.Time
}

// attr reports the file: the staged bytes while there are some, else the
// object as last known.
func (w *wfile) attr() Attr {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.obj
	o.Key = w.key
	if w.st != nil {
		o.Size = w.st.Size()
	}
	if !w.mtime.IsZero() && w.mtime.After(o.ModTime) {
		o.ModTime = w.mtime
	}
	return Attr{Ino: w.ino, Size: o.Size, ModTime: o.ModTime}
}

func (w *wfile) name() (bucket, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bucket, w.key
}

// register puts w in the registry, or (when another wfile has the name)
// returns that one.
func (w *wfile) register() *wfile {
	w.mu.Lock()
	unlinked := w.unlinked
	w.mu.Unlock()
	if unlinked {
		return w
	}
	return w.ns.writes.add(w)
}

// drop makes w nameless (unlinked, or replaced by a rename): nothing more
// is uploaded, and its staged bytes go when the last handle closes.
func (w *wfile) drop() {
	w.mu.Lock()
	w.unlinked = true
	st := w.st
	w.mu.Unlock()
	if st != nil {
		st.SetTarget("", "")
	}
	w.ns.writes.remove(w)
	w.closeIfIdle()
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

// stage makes sure the file's bytes are in a staging file, fetching the
// object unless empty says it is about to be emptied anyway.
func (w *wfile) stage(ctx context.Context, empty bool) (*stage.File, error) {
	if err := w.matMu.lock(ctx); err != nil {
		return nil, err
	}
	defer w.matMu.unlock()
	w.mu.Lock()
	if w.st != nil {
		st := w.st
		w.mu.Unlock()
		return st, nil
	}
	bucket, key, obj, unlinked := w.bucket, w.key, w.obj, w.unlinked
	w.mu.Unlock()
	area, err := w.area()
	if err != nil {
		return nil, err
	}
	ctx = w.ctx(ctx)
	var st *stage.File
	switch {
	case !empty && obj.Key != "" && obj.Size > area.Threshold():
		// Large: only the parts a change touches are fetched, the others
		// are copied on the server at upload (an append costs no
		// download of the whole).
		st, err = area.CreateOver(key, obj.Key, obj.ETag, obj.Size, w.ns.fill(bucket))
		if err != nil {
			return nil, err
		}
	default:
		if st, err = area.Create(key); err != nil {
			return nil, err
		}
		if !empty && obj.Key != "" && obj.Size > 0 {
			if err := w.ns.fetch(ctx, bucket, obj, st); err != nil {
				st.Remove()
				return nil, err
			}
		}
	}
	if !unlinked {
		st.SetTarget(bucket, key)
	}
	w.mu.Lock()
	w.st = st
	w.mu.Unlock()
	return st, nil
}

// changed records a change of the staged bytes.
func (w *wfile) changed() {
	w.mu.Lock()
	w.dirty = true
	w.gen++
	w.mtime = w.ns.cfg.Now()
	w.mu.Unlock()
}

func (w *wfile) truncate(ctx context.Context, size int64) error {
	st, err := w.stage(ctx, size == 0)
	if err == nil {
		err = st.Resize(w.ctx(ctx), size)
	}
	if err != nil {
		return err
	}
	w.changed()
	w.mu.Lock()
	w.lost.cut(size)
	w.mu.Unlock()
	return nil
}

// uploadTimeout bounds one upload: the request timeout for the requests,
// plus time for the bytes at no less than 1 MiB/s.
func (w *wfile) uploadTimeout(size int64) time.Duration {
	return w.ns.cache.Config().RequestTimeout + time.Duration(size>>20)*time.Second
}

// upload stores the staged bytes if they changed. It runs to the end even
// if the caller is interrupted (a half-done upload helps nobody); waiting
// for another upload of the file to end can be interrupted (EINTR).
func (w *wfile) upload(ctx context.Context) error {
	if err := w.upMu.lock(ctx); err != nil {
		return context.Canceled
	}
	defer w.upMu.unlock()
	return w.uploadLocked(ctx)
}

func (w *wfile) uploadLocked(ctx context.Context) error {
	w.mu.Lock()
	if w.refused != nil {
		err := w.refused
		w.mu.Unlock()
		return err
	}
	if !w.dirty || w.unlinked || w.st == nil {
		w.mu.Unlock()
		return nil
	}
	if w.lost.err != nil {
		w.mu.Unlock()
		return w.abandon()
	}
	bucket, key, st, gen := w.bucket, w.key, w.st, w.gen
	opts := store.PutOptions{IfAbsent: w.created}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx(ctx)), w.uploadTimeout(st.Size()))
	defer cancel()
	start := time.Now()
	o, err := st.Upload(ctx, bucket, key, opts)
	if errors.Is(err, store.ErrUnsupported) && opts.IfAbsent {
		// The server refuses conditional writes: create unconditionally.
		w.ns.log.Debug("server refuses If-None-Match; creating without it", "bucket", bucket, "key", key)
		o, err = st.Upload(ctx, bucket, key, store.PutOptions{})
	}
	if err != nil && w.ns.scoped() && errors.Is(err, store.ErrAccessDenied) {
		return w.refuse(err)
	}
	if err != nil {
		w.mu.Lock()
		w.failedGen = gen
		w.mu.Unlock()
		if errors.Is(err, store.ErrExists) {
			w.ns.log.Error("conflict: another writer created this object first; not overwritten", "bucket", bucket, "key", key, "err", err)
		}
		w.ns.log.Error("upload failed: the data stays staged and the next close, fsync or unmount tries again",
			"bucket", bucket, "key", key, "staged", st.Path(), "size", st.Size(), "err", err)
		return fmt.Errorf("upload %s/%s: %w", bucket, key, err)
	}
	if o.ModTime.IsZero() {
		o.ModTime = w.ns.cfg.Now()
	}
	w.mu.Lock()
	w.obj, w.created = o, false
	if w.gen == gen {
		w.dirty = false
	}
	w.mu.Unlock()
	w.ns.deletes.wrote(w.id.Key, bucket, key, o.ETag)
	w.ns.log.Debug("uploaded", "bucket", bucket, "key", key, "size", o.Size, "took", time.Since(start))
	return nil
}

// closeHandle drops one handle; the last one frees the staging file
// unless it holds bytes not yet uploaded.
func (w *wfile) closeHandle() {
	w.mu.Lock()
	w.handles--
	var st *stage.File
	last := w.handles == 0 && (!w.dirty || w.unlinked || w.refused != nil)
	if last {
		st, w.st = w.st, nil
	}
	w.mu.Unlock()
	if !last {
		return
	}
	w.ns.writes.remove(w)
	if st != nil {
		st.Remove()
	}
}

// pending reports whether w holds bytes not yet uploaded under its name.
func (w *wfile) pending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st != nil && !w.unlinked && w.refused == nil && (w.dirty || w.created)
}

// Drain uploads, once more, every file whose upload failed, and reports
// the staging files it still could not upload (they stay on disk). The
// mount command calls it after unmounting.
func (ns *NS) Drain(ctx context.Context) (kept []string) {
	for _, w := range ns.writes.all() {
		if err := w.upload(ctx); err != nil && w.refusedErr() == nil {
			w.mu.Lock()
			if w.st != nil {
				kept = append(kept, w.st.Path())
				ns.log.Error("unmounted with data that could not be uploaded; it is kept in the staging directory",
					"bucket", w.bucket, "key", w.key, "staged", w.st.Path())
			}
			w.mu.Unlock()
			continue
		}
		w.closeIfIdle() // uploaded, or refused (identity.go): nothing to keep
	}
	return kept
}

// writeFlags are the open flags that make an open a writer's.
const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND
