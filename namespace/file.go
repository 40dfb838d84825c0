package namespace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// Attr is what a file's attributes say.
type Attr struct {
	Ino     uint64
	Size    int64
	ModTime time.Time
}

// File is one version of one object (see FileIno): its attributes never
// change, and every open of it reads that version, pinned by ETag. Once
// the mount writes or renames it, an overlay (a wfile) takes over: the
// staged bytes, the new name, the object uploaded last.
type File struct {
	ns     *NS
	bucket string
	key    string
	obj    store.Object
	ino    uint64
	ov     atomic.Pointer[wfile]
}

func (ns *NS) objectFile(bucket string, o store.Object) *File {
	return &File{ns: ns, bucket: bucket, key: o.Key, obj: o, ino: FileIno(bucket, o)}
}

// fileOf returns a File showing w.
func (ns *NS) fileOf(w *wfile) *File {
	w.mu.Lock()
	f := &File{ns: ns, bucket: w.bucket, key: w.key, obj: w.obj, ino: w.ino}
	w.mu.Unlock()
	f.ov.Store(w)
	return f
}

// Ino is the file's inode number.
func (f *File) Ino() uint64 { return f.ino }

// Pinned reports whether f is one version of an object, untouched by this
// mount (no overlay): its attributes never change.
func (f *File) Pinned() bool { return f.ov.Load() == nil }

// Name returns the file's bucket and key (the new key after a rename).
func (f *File) Name() (bucket, key string) {
	if w := f.ov.Load(); w != nil {
		return w.name()
	}
	return f.bucket, f.key
}

// Attr reports the file's attributes.
func (f *File) Attr() Attr {
	if w := f.ov.Load(); w != nil {
		return w.attr()
	}
	return Attr{Ino: f.ino, Size: f.obj.Size, ModTime: f.obj.ModTime}
}

// AttrAs reports f's attributes as shown in place of known, the file the
// kernel already holds under the name (nil: none). The same version keeps
// the time it was shown with: a listing gives times to the millisecond and
// HEAD to the second, and a changed time makes the kernel drop the file's
// pages inside the LOOKUP, holding the directory's lock while reads of the
// file finish.
func (f *File) AttrAs(known *File) Attr {
	a := f.Attr()
	if known != nil && known.Ino() == a.Ino && f.Pinned() && known.Pinned() {
		a.ModTime = known.Attr().ModTime
	}
	return a
}

// AttrWith reports the file's attributes as the caller of ctx sees them
// through h (nil: no handle). On a mount of many identities an object's
// File shows its version to everyone, and only its owner's handle that
// writes it shows what that handle staged (fstat of the descriptor).
func (f *File) AttrWith(ctx context.Context, h *Handle) Attr {
	if h == nil || h.w == nil || !f.ns.scoped() || f.ov.Load() != nil || h.w.mayUse(ctx) != nil {
		return f.Attr()
	}
	a := h.w.attr()
	a.Ino = f.ino
	return a
}

// overlay returns f's wfile for the owner o, making one for the object f
// is when needed. A file being written under f's name already by o
// (another File) is shared. On a mount of many identities, an object's
// File (its inode is every user's) never takes an overlay: o's wfile gets
// an inode of its own (identity.go).
func (f *File) overlay(o Identity) *wfile {
	if w := f.ov.Load(); w != nil {
		return w
	}
	if w := f.ns.writes.get(o.Key, f.bucket, f.key); w != nil {
		if f.ns.scoped() {
			return w
		}
		f.ov.CompareAndSwap(nil, w)
		return f.ov.Load()
	}
	w := &wfile{ns: f.ns, ino: f.ino, id: o, bucket: f.bucket, key: f.key, obj: f.obj}
	if f.ns.scoped() {
		w.ino = f.ns.newIno(f.bucket, f.key)
		return w
	}
	f.ov.CompareAndSwap(nil, w)
	return f.ov.Load()
}

// registered is overlay, put in the registry (or replaced by the wfile
// that holds the name there).
func (f *File) registered(o Identity) *wfile {
	w := f.overlay(o)
	if r := w.register(); r != w {
		if !f.ns.scoped() {
			f.ov.Store(r)
		}
		return r
	}
	return w
}

// Open opens the file with open(2) flags. A read-only open of a file the
// mount never wrote pins the version (Handle.Pinned); any other reads and
// writes the overlay.
func (f *File) Open(ctx context.Context, flags uint32) (*Handle, error) {
	if w := f.ov.Load(); w != nil {
		if err := w.mayUse(ctx); err != nil {
			return nil, err
		}
	}
	if flags&writeFlags == 0 && f.ov.Load() == nil {
		if err := f.checkVersion(ctx); err != nil {
			return nil, err
		}
		r, err := f.ns.cache.OpenFor(ctx, f.bucket, f.obj)
		if err != nil {
			return nil, err
		}
		return &Handle{ns: f.ns, bucket: f.bucket, key: f.key, r: r}, nil
	}
	if flags&writeFlags != 0 && !f.ns.Writable() {
		return nil, ErrReadOnly
	}
	ctx, o, err := f.ns.caller(ctx)
	if err != nil {
		return nil, err
	}
	w := f.overlay(o)
	if flags&writeFlags != 0 {
		w = f.registered(o)
	}
	return w.open(ctx, flags)
}

func (w *wfile) open(ctx context.Context, flags uint32) (*Handle, error) {
	w.mu.Lock()
	w.handles++
	w.mu.Unlock()
	h := &Handle{ns: w.ns, w: w, flags: flags}
	h.bucket, h.key = w.name()
	if flags&syscall.O_TRUNC != 0 {
		if err := w.truncate(ctx, 0); err != nil {
			h.Release(ctx)
			return nil, err
		}
	}
	return h, nil
}

// Truncate sets the size of a file by name (truncate(2) without a
// handle): staged and uploaded at once.
func (f *File) Truncate(ctx context.Context, size int64) (Attr, error) {
	if !f.ns.Writable() {
		return Attr{}, ErrReadOnly
	}
	if w := f.ov.Load(); w != nil {
		if err := w.mayUse(ctx); err != nil {
			return Attr{}, err
		}
	}
	ctx, o, err := f.ns.caller(ctx)
	if err != nil {
		return Attr{}, err
	}
	w := f.registered(o)
	w.mu.Lock()
	w.handles++ // held while truncating and uploading
	w.mu.Unlock()
	defer w.closeHandle()
	if err := w.truncate(ctx, size); err != nil {
		return Attr{}, err
	}
	if err := w.upload(ctx); err != nil {
		return Attr{}, err
	}
	return w.attr(), nil
}

// SetSize answers a setattr(2) of f through h (nil: by name), which sets
// the size to size when set: a handle that writes truncates what it staged
// (uploaded at its close), any other truncate is by name (Truncate). Times,
// modes and owners S3 keeps none of: nothing else changes. It reports the
// attributes to show: the handle's, or the file's.
func (f *File) SetSize(ctx context.Context, h *Handle, size int64, set bool) (Attr, error) {
	if h != nil && !h.Pinned() {
		if set {
			if err := h.Truncate(ctx, size); err != nil {
				return Attr{}, err
			}
		}
		return h.Attr(), nil
	}
	if !set {
		return f.Attr(), nil
	}
	return f.Truncate(ctx, size)
}

// Handle is one open of a File: pinned to the version it opened (no
// overlay), or on the overlay, reading and writing the staged bytes.
type Handle struct {
	ns          *NS
	w           *wfile // nil: pinned
	flags       uint32
	bucket, key string // at the open, for the log

	mu sync.Mutex
	r  *cache.Reader // reads of the object while nothing is staged
}

// Pinned reports whether the handle reads one version of an object: its
// bytes never change, so the kernel may keep its page cache.
func (h *Handle) Pinned() bool { return h.w == nil }

// PageCache is what the kernel's page cache does for an open file.
type PageCache int

const (
	PagesDrop   PageCache = iota // dropped at the open: the bytes may have changed
	PagesKeep                    // kept: one version's bytes never change (an inode is one version)
	PagesBypass                  // bypassed: the staged file holds the bytes
)

// Pages says what the kernel's page cache does for h: a pinned handle
// keeps it, a writer bypasses it, and any other drops it.
func (h *Handle) Pages() PageCache {
	switch {
	case h.Pinned():
		return PagesKeep
	case h.Writer():
		return PagesBypass
	}
	return PagesDrop
}

// Stale reports whether err, from a read, close or fsync of h, says the name the
// caller looked up no longer leads to h's file: a pinned version changed or
// went (store.ErrChanged), or the file was dropped (ErrDropped). The
// kernel's entry for the name is then to be forgotten.
func (h *Handle) Stale(err error) bool {
	return errors.Is(err, ErrDropped) || h.Pinned() && errors.Is(err, store.ErrChanged)
}

// Writer reports whether the handle may write.
func (h *Handle) Writer() bool { return h.flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 }

// Name returns bucket and key as of the open.
func (h *Handle) Name() (bucket, key string) { return h.bucket, h.key }

// Attr reports the attributes of what the handle reads.
func (h *Handle) Attr() Attr {
	if h.w != nil {
		return h.w.attr()
	}
	o := h.r.Object()
	return Attr{Ino: FileIno(h.bucket, o), Size: o.Size, ModTime: o.ModTime}
}

// Read fills dest from off, or returns the bytes where the cache holds
// them, with the Hold that keeps them there: release it once they have
// been passed on. A pinned handle whose object changed or went fails with
// an error wrapping store.ErrChanged, and the cache forgets the key, so the
// next lookup sees what is there now.
func (h *Handle) Read(ctx context.Context, dest []byte, off int64) ([]byte, cache.Hold, error) {
	head, tail, hold, err := h.ReadSpan(ctx, dest, off)
	data, hold := cache.Join(dest, head, tail, hold)
	return data, hold, err
}

// ReadSpan is Read for a reply that can be sent in two pieces: bytes that
// cross from one cached block into the next come back as head and tail,
// both held by the Hold, without copying (cache.Reader.Span).
func (h *Handle) ReadSpan(ctx context.Context, dest []byte, off int64) (head, tail []byte, hold cache.Hold, err error) {
	if h.w == nil {
		head, tail, hold, err = h.r.Span(ctx, dest, off)
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, store.ErrNotFound) {
				// Deleted since the open: the handle is stale, as when
				// the object was replaced.
				err = fmt.Errorf("%w: deleted since the open (%v)", store.ErrChanged, err)
			}
			if errors.Is(err, store.ErrChanged) {
				h.ns.cache.Forget(h.bucket, h.key)
			}
			return nil, nil, cache.Hold{}, err
		}
		return head, tail, hold, nil
	}
	w := h.w
	w.mu.Lock()
	st, obj := w.st, w.obj
	w.mu.Unlock()
	if st != nil {
		n, err := st.Read(w.ctx(ctx), dest, off)
		if err != nil && err != io.EOF {
			return nil, nil, cache.Hold{}, err
		}
		return dest[:n], nil, cache.Hold{}, nil
	}
	if obj.Key == "" {
		return nil, nil, cache.Hold{}, nil
	}
	head, tail, hold, err = h.reader(obj).Span(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, cache.Hold{}, err
	}
	return head, tail, hold, nil
}

// reader returns a cache reader pinned to obj, replacing one pinned to an
// older version.
func (h *Handle) reader(obj store.Object) *cache.Reader {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r != nil && h.r.Object().ETag == obj.ETag && h.r.Object().Key == obj.Key {
		return h.r
	}
	if h.r != nil {
		h.r.Close()
	}
	h.r = h.ns.cache.Open(h.w.bucket, obj)
	return h.r
}

// Write writes data at off (at the end for O_APPEND) into the staged bytes.
func (h *Handle) Write(ctx context.Context, data []byte, off int64) (int, error) {
	if h.w == nil || !h.Writer() {
		return 0, ErrNotWriter
	}
	if err := h.w.refusedErr(); err != nil {
		return 0, err
	}
	st, err := h.w.stage(ctx, false)
	if err != nil {
		return 0, err
	}
	if h.flags&syscall.O_APPEND != 0 {
		// The kernel's idea of the end may be stale; the staged file's
		// is not.
		off = st.Size()
	}
	n, err := st.Write(h.w.ctx(ctx), data, off)
	if n > 0 {
		h.w.changed()
	}
	h.w.wrote(off, n, len(data), err)
	return n, err
}

// Flush runs at every close of a descriptor: the changed bytes are
// uploaded, and a failure is what close() returns.
func (h *Handle) Flush(ctx context.Context) error {
	if h.w == nil || !h.Writer() {
		return nil // a reader's close does not answer for a writer's upload
	}
	return h.w.upload(ctx)
}

// Fsync uploads the changed bytes.
func (h *Handle) Fsync(ctx context.Context) error {
	if h.w == nil {
		return nil
	}
	return h.w.upload(ctx)
}

// Truncate sets the size through the handle.
func (h *Handle) Truncate(ctx context.Context, size int64) error {
	if h.w == nil {
		return ErrNotWriter
	}
	return h.w.truncate(ctx, size)
}

// Release tries once more to upload (pages of a shared writable mapping
// can arrive after the last close), then lets go of the handle.
func (h *Handle) Release(ctx context.Context) {
	h.mu.Lock()
	if h.r != nil {
		h.r.Close()
		h.r = nil
	}
	h.mu.Unlock()
	w := h.w
	if w == nil {
		return
	}
	w.mu.Lock()
	retry := w.failedGen != w.gen // not what the last close just failed to send
	w.mu.Unlock()
	if h.Writer() && retry {
		_ = w.upload(ctx)
	}
	w.closeHandle()
}
