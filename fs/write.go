package fs

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Writing. A file opened for writing (or created) gets a wfile: its bytes
// are staged on local disk (package stage) and uploaded when a handle is
// flushed (close) or fsync'd, in one piece, so no reader ever sees half a
// file. Until then readers elsewhere see the old object or nothing; the
// mount itself reads the staged bytes through the same inode. A failed
// upload fails that close or fsync with EIO and keeps the staged bytes;
// the next flush, fsync or close retries, and unmount tries once more and
// leaves what it could not upload in the staging directory.

// writes is the registry of files being written, by bucket and key, so a
// lookup of the name finds the staged file (and its inode) while it is
// open or holds bytes not yet uploaded.
type writes struct {
	mu    sync.Mutex
	files map[string]*wfile
	seq   atomic.Uint64 // for the inode numbers of created files
}

func wkey(bucket, key string) string { return bucket + "\x00" + key }

func (ws *writes) get(bucket, key string) *wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.files[wkey(bucket, key)]
}

// add registers w under its name unless another wfile holds it, which is
// returned instead.
func (ws *writes) add(w *wfile) *wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.files == nil {
		ws.files = map[string]*wfile{}
	}
	k := wkey(w.bucket, w.key)
	if old := ws.files[k]; old != nil {
		return old
	}
	ws.files[k] = w
	return w
}

func (ws *writes) remove(w *wfile) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	k := wkey(w.bucket, w.key)
	if ws.files[k] == w {
		delete(ws.files, k)
	}
}

// under returns the registered files whose keys start with prefix.
func (ws *writes) under(bucket, prefix string) []*wfile {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var out []*wfile
	for _, w := range ws.files {
		if w.bucket == bucket && strings.HasPrefix(w.key, prefix) {
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
	fs  *FS
	ino uint64 // the inode number of its inode

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
	handles     int
	mtime       time.Time
}

func (f *FS) writable() bool { return f.cfg.Writer != nil && f.cfg.Staging != nil }

// attr reports the file: the staged bytes while there are some, else the
// object as last known.
func (w *wfile) attr(out *fuse.Attr) {
	w.mu.Lock()
	o, bucket := w.obj, w.bucket
	o.Key = w.key
	if w.st != nil {
		o.Size = w.st.Size()
	}
	if !w.mtime.IsZero() && w.mtime.After(o.ModTime) {
		o.ModTime = w.mtime
	}
	w.mu.Unlock()
	w.fs.fileAttr(out, bucket, o)
	out.Ino = w.ino
}

// overlay returns n's wfile, making one for the object n is when needed.
// A file being written under n's name already (another inode) is shared.
func (n *fileNode) overlay() *wfile {
	if w := n.ov.Load(); w != nil {
		return w
	}
	if w := n.fs.writes.get(n.bucket, n.key); w != nil {
		n.ov.CompareAndSwap(nil, w)
		return n.ov.Load()
	}
	w := &wfile{fs: n.fs, ino: n.StableAttr().Ino, bucket: n.bucket, key: n.key, obj: n.obj}
	n.ov.CompareAndSwap(nil, w)
	return n.ov.Load()
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
	return w.fs.writes.add(w)
}

const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND

// openWritable opens n for writing, or for reading a file this mount has
// written or renamed (file.go sends both here).
func (n *fileNode) openWritable(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 && !n.fs.writable() {
		return nil, 0, syscall.EROFS
	}
	w := n.overlay()
	if flags&writeFlags != 0 {
		if r := w.register(); r != w {
			w = r
			n.ov.Store(w)
		}
	}
	return w.open(ctx, flags)
}

func (w *wfile) open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	w.mu.Lock()
	w.handles++
	w.mu.Unlock()
	h := &wHandle{w: w, flags: flags}
	if flags&syscall.O_TRUNC != 0 {
		if errno := w.truncate(ctx, 0); errno != 0 {
			h.Release(ctx)
			return nil, 0, errno
		}
	}
	// No FOPEN_KEEP_CACHE: the kernel drops pages cached for this inode,
	// which may hold what an earlier version said. A descriptor that may
	// write bypasses the kernel's page cache (FOPEN_DIRECT_IO): the staged
	// file already holds the bytes, and a second copy in the page cache
	// would only cost a copy and memory while a large file is written.
	var fuseFlags uint32
	if h.writer() {
		fuseFlags = fuse.FOPEN_DIRECT_IO
	}
	return h, fuseFlags, 0
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
	st, err := w.fs.cfg.Staging.Create(key)
	if err != nil {
		return nil, err
	}
	if !empty && obj.Key != "" && obj.Size > 0 {
		if err := w.fs.cache.Fetch(ctx, bucket, obj, st); err != nil {
			st.Remove()
			return nil, err
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
	w.mtime = time.Now()
	w.mu.Unlock()
}

func (w *wfile) truncate(ctx context.Context, size int64) syscall.Errno {
	st, err := w.stage(ctx, size == 0)
	if err == nil {
		err = st.Truncate(size)
	}
	if err != nil {
		return w.fail("truncate", err)
	}
	w.changed()
	return 0
}

// fail logs and maps a write-side error.
func (w *wfile) fail(op string, err error) syscall.Errno {
	w.mu.Lock()
	bucket, key := w.bucket, w.key
	w.mu.Unlock()
	return w.fs.writeFail(op, bucket, key, err)
}

func (f *FS) writeFail(op, bucket, key string, err error) syscall.Errno {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		// The staging area logs its own line when it is full.
		return syscall.ENOSPC
	case errors.Is(err, store.ErrExists):
		f.log.Error("conflict: another writer created this object first; not overwritten", "op", op, "bucket", bucket, "key", key, "err", err)
		return syscall.EIO
	}
	return f.fail(op, bucket, key, err)
}

// uploadTimeout bounds one upload: the request timeout for the requests,
// plus time for the bytes at no less than 1 MiB/s.
func (w *wfile) uploadTimeout(size int64) time.Duration {
	return w.fs.cache.Config().RequestTimeout + time.Duration(size>>20)*time.Second
}

// upload stores the staged bytes if they changed. It runs to the end even
// if the caller is interrupted (a half-done upload helps nobody); waiting
// for another upload of the file to end can be interrupted (EINTR).
func (w *wfile) upload(ctx context.Context, op string) syscall.Errno {
	if err := w.upMu.lock(ctx); err != nil {
		return syscall.EINTR
	}
	defer w.upMu.unlock()
	return w.uploadLocked(ctx, op)
}

func (w *wfile) uploadLocked(ctx context.Context, op string) syscall.Errno {
	w.mu.Lock()
	if !w.dirty || w.unlinked || w.st == nil {
		w.mu.Unlock()
		return 0
	}
	bucket, key, st, gen := w.bucket, w.key, w.st, w.gen
	opts := store.PutOptions{IfAbsent: w.created}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.uploadTimeout(st.Size()))
	defer cancel()
	start := time.Now()
	o, err := st.Upload(ctx, bucket, key, opts)
	if errors.Is(err, store.ErrUnsupported) && opts.IfAbsent {
		// The server refuses conditional writes: create unconditionally.
		w.fs.log.Debug("server refuses If-None-Match; creating without it", "bucket", bucket, "key", key)
		o, err = st.Upload(ctx, bucket, key, store.PutOptions{})
	}
	if err != nil {
		w.mu.Lock()
		w.failedGen = gen
		w.mu.Unlock()
		errno := w.fs.writeFail(op, bucket, key, err)
		w.fs.log.Error("upload failed: the data stays staged and the next close, fsync or unmount tries again",
			"bucket", bucket, "key", key, "staged", st.Path(), "size", st.Size(), "err", err)
		return errno
	}
	if o.ModTime.IsZero() {
		o.ModTime = time.Now()
	}
	w.mu.Lock()
	w.obj, w.created = o, false
	if w.gen == gen {
		w.dirty = false
	}
	w.mu.Unlock()
	w.fs.cache.Wrote(bucket, o)
	w.fs.deletes.wrote(bucket, key, o.ETag)
	w.fs.log.Debug("uploaded", "bucket", bucket, "key", key, "size", o.Size, "took", time.Since(start))
	return 0
}

// closeHandle drops one handle; the last one frees the staging file
// unless it holds bytes not yet uploaded.
func (w *wfile) closeHandle() {
	w.mu.Lock()
	w.handles--
	var st *stage.File
	last := w.handles == 0 && (!w.dirty || w.unlinked)
	if last {
		st, w.st = w.st, nil
	}
	w.mu.Unlock()
	if !last {
		return
	}
	w.fs.writes.remove(w)
	if st != nil {
		st.Remove()
	}
}

// wHandle is one open of a file with a wfile.
type wHandle struct {
	w     *wfile
	flags uint32

	mu sync.Mutex
	r  *cache.Reader // reads of the object while nothing is staged
}

var (
	_ gofs.FileReader    = (*wHandle)(nil)
	_ gofs.FileWriter    = (*wHandle)(nil)
	_ gofs.FileFlusher   = (*wHandle)(nil)
	_ gofs.FileFsyncer   = (*wHandle)(nil)
	_ gofs.FileReleaser  = (*wHandle)(nil)
	_ gofs.FileGetattrer = (*wHandle)(nil)
	_ gofs.FileSetattrer = (*wHandle)(nil)
)

// writer reports whether the handle may write.
func (h *wHandle) writer() bool { return h.flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 }

func (h *wHandle) name() (string, string) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	return h.w.bucket, h.w.key
}

func (h *wHandle) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "read", b, k)()
	defer h.w.fs.guard("read", b, k, &errno)
	w := h.w
	w.mu.Lock()
	st, obj := w.st, w.obj
	w.mu.Unlock()
	if st != nil {
		n, err := st.ReadAt(dest, off)
		if err != nil && err != io.EOF {
			return nil, w.fail("read", err)
		}
		return fuse.ReadResultData(dest[:n]), 0
	}
	if obj.Key == "" {
		return fuse.ReadResultData(nil), 0
	}
	r := h.reader(obj)
	data, err := r.Slice(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, w.fail("read", err)
	}
	return fuse.ReadResultData(data), 0
}

// reader returns a cache reader pinned to obj, replacing one pinned to an
// older version.
func (h *wHandle) reader(obj store.Object) *cache.Reader {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r != nil && h.r.Object().ETag == obj.ETag && h.r.Object().Key == obj.Key {
		return h.r
	}
	if h.r != nil {
		h.r.Close()
	}
	h.r = h.w.fs.cache.Open(h.w.bucket, obj)
	return h.r
}

func (h *wHandle) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "write", b, k)()
	defer h.w.fs.guard("write", b, k, &errno)
	if !h.writer() {
		return 0, syscall.EBADF
	}
	st, err := h.w.stage(ctx, false)
	if err != nil {
		return 0, h.w.fail("write", err)
	}
	if h.flags&syscall.O_APPEND != 0 {
		// The kernel's idea of the end may be stale; the staged file's
		// is not.
		off = st.Size()
	}
	n, err := st.WriteAt(data, off)
	if n > 0 {
		h.w.changed()
	}
	if err != nil {
		return uint32(n), h.w.fail("write", err)
	}
	return uint32(n), 0
}

// Flush runs at every close of a descriptor: the changed bytes are
// uploaded, and a failure is what close() returns.
func (h *wHandle) Flush(ctx context.Context) (errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "flush", b, k)()
	defer h.w.fs.guard("flush", b, k, &errno)
	if !h.writer() {
		return 0 // a reader's close does not answer for a writer's upload
	}
	return h.w.upload(ctx, "close")
}

func (h *wHandle) Fsync(ctx context.Context, flags uint32) (errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "fsync", b, k)()
	defer h.w.fs.guard("fsync", b, k, &errno)
	return h.w.upload(ctx, "fsync")
}

// Release tries once more to upload (pages of a shared writable mapping
// can arrive after the last close), then lets go of the handle.
func (h *wHandle) Release(ctx context.Context) (errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "release", b, k)()
	defer h.w.fs.guard("release", b, k, &errno)
	h.w.mu.Lock()
	retry := h.w.failedGen != h.w.gen // not what the last close just failed to send
	h.w.mu.Unlock()
	if h.writer() && retry {
		h.w.upload(ctx, "release")
	}
	h.mu.Lock()
	if h.r != nil {
		h.r.Close()
		h.r = nil
	}
	h.mu.Unlock()
	h.w.closeHandle()
	return 0
}

func (h *wHandle) Getattr(ctx context.Context, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "getattr", b, k)()
	defer h.w.fs.guard("getattr", b, k, &errno)
	h.w.attr(&out.Attr)
	return 0
}

func (h *wHandle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	b, k := h.name()
	defer h.w.fs.track(ctx, "setattr", b, k)()
	defer h.w.fs.guard("setattr", b, k, &errno)
	if sz, ok := in.GetSize(); ok {
		if errno := h.w.truncate(ctx, int64(sz)); errno != 0 {
			return errno
		}
	}
	h.w.attr(&out.Attr)
	return 0
}

// Setattr on a file without a handle: truncate(2) by path is staged and
// uploaded at once; times, modes and owners are not kept by S3 and are
// accepted and ignored, so touch, cp -p and R's file.copy work.
func (n *fileNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.fs.track(ctx, "setattr", n.bucket, n.key)()
	defer n.fs.guard("setattr", n.bucket, n.key, &errno)
	if h, ok := fh.(*wHandle); ok {
		return h.Setattr(ctx, in, out)
	}
	sz, truncating := in.GetSize()
	if !truncating {
		if w := n.ov.Load(); w != nil {
			w.attr(&out.Attr)
		} else {
			n.fs.fileAttr(&out.Attr, n.bucket, n.obj)
		}
		return 0
	}
	if !n.fs.writable() {
		return syscall.EROFS
	}
	w := n.overlay()
	if r := w.register(); r != w {
		w = r
		n.ov.Store(w)
	}
	w.mu.Lock()
	w.handles++ // held while truncating and uploading
	w.mu.Unlock()
	defer w.closeHandle()
	if errno := w.truncate(ctx, int64(sz)); errno != 0 {
		return errno
	}
	if errno := w.upload(ctx, "truncate"); errno != 0 {
		return errno
	}
	w.attr(&out.Attr)
	return 0
}

// lookupWriting answers a lookup of a name being written from the
// registry, with the inode that holds the staged bytes (dir.go asks first).
func (d *dirNode) lookupWriting(ctx context.Context, key string, out *fuse.EntryOut) *gofs.Inode {
	w := d.fs.writes.get(d.bucket, key)
	if w == nil {
		return nil
	}
	w.attr(&out.Attr)
	return d.fileInode(ctx, w)
}

// fileInode returns the inode of w: the one the kernel knows, or a new one
// with w's inode number and state.
func (d *dirNode) fileInode(ctx context.Context, w *wfile) *gofs.Inode {
	w.mu.Lock()
	n := &fileNode{fs: d.fs, bucket: w.bucket, key: w.key, obj: w.obj}
	w.mu.Unlock()
	n.ov.Store(w)
	return d.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: w.ino})
}

// newIno is the inode number of a file created by this mount: unique, so
// it never meets the inode of an object's version.
func (f *FS) newIno(bucket, key string) uint64 {
	return ino(bucket, key+"\x00created\x00"+strconv.FormatUint(f.writes.seq.Add(1), 10), false)
}

// Drain uploads, once more, every file whose upload failed, and reports
// the staging files it still could not upload (they stay on disk). The
// mount command calls it after unmounting.
func Drain(ctx context.Context, root gofs.InodeEmbedder) (kept []string) {
	var f *FS
	switch r := root.(type) {
	case *bucketsNode:
		f = r.fs
	case *dirNode:
		f = r.fs
	default:
		return nil
	}
	for _, w := range f.writes.all() {
		if errno := w.upload(ctx, "unmount"); errno != 0 {
			w.mu.Lock()
			if w.st != nil {
				kept = append(kept, w.st.Path())
				f.log.Error("unmounted with data that could not be uploaded; it is kept in the staging directory",
					"bucket", w.bucket, "key", w.key, "staged", w.st.Path())
			}
			w.mu.Unlock()
			continue
		}
		w.closeIfIdle()
	}
	return kept
}
