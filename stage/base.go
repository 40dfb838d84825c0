package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// A staging file created over an existing object (CreateOver) starts with
// the object's size and none of its bytes: a part of the object is
// fetched (Fill) only when a write, a read or a change of size touches it,
// and the parts nobody touched are copied on the server at upload
// (UploadPartCopy). Appending a line to a 1 GiB object so costs one part's
// download, the new bytes' upload and server-side copies, not a download
// and an upload of the whole object.

// Fill fetches bytes [off, off+size) of the object key, pinned to etag
// (failing with store.ErrChanged when it has another), into w at the same
// offsets.
type Fill func(ctx context.Context, key, etag string, off, size int64, w io.WriterAt) error

// errNotLocal is a write or truncate that WriteAt or Truncate cannot do
// without fetching a base part first: Write and Resize can.
var errNotLocal = errors.New("stage: bytes of the base object not fetched; use Write or Resize")

// base is the object a staging file was created over.
type base struct {
	key, etag string
	size      int64  // bytes [0, size) are the object's where not filled
	filled    []bool // by part index: the part's bytes are local
	holes     int64  // bytes of [0, size) not local
	fill      Fill
}

// CreateOver makes a staging file of the object key (ETag etag, size
// bytes) without fetching it; label is as for Create.
func (a *Area) CreateOver(label, key, etag string, size int64, fill Fill) (*File, error) {
	f, err := a.Create(label)
	if err != nil {
		return nil, err
	}
	if err := f.f.Truncate(size); err != nil {
		f.Remove()
		return nil, fmt.Errorf("staging file: %w", err)
	}
	f.mu.Lock()
	f.size = size
	f.base = &base{key: key, etag: etag, size: size, filled: make([]bool, numParts(a.cfg.PartSize, size)), holes: size, fill: fill}
	f.mu.Unlock()
	return f, nil
}

func (f *File) holesLocked() int64 {
	if f.base == nil {
		return 0
	}
	return f.base.holes
}

// holeLocked reports whether part num is a hole: bytes of the base not
// fetched.
func (b *base) holeLocked(num int, ps int64) bool {
	start, _ := partBounds(ps, num)
	return num-1 < len(b.filled) && !b.filled[num-1] && start < b.size
}

// anyHoleLocked reports whether a write of [lo, hi) needs a part fetched:
// a part of the base it overlaps, or the base's last part when the write
// goes past the base's end and that part ends inside the part (it then
// holds more than the object's bytes).
func (b *base) anyHoleLocked(lo, hi int64, ps int64) bool {
	if hi > b.size && b.lastHoleLocked(ps) {
		return true
	}
	if lo >= b.size || hi <= lo {
		return false
	}
	for num := partAt(ps, lo); num <= partAt(ps, min(hi, b.size)-1); num++ {
		if b.holeLocked(num, ps) {
			return true
		}
	}
	return false
}

// lastHoleLocked reports whether the base's last part is a hole that
// bytes past the base's end would share: a part that ends exactly at the
// base's end stays whole, and can still be copied.
func (b *base) lastHoleLocked(ps int64) bool {
	if b.size == 0 {
		return false
	}
	num := partAt(ps, b.size-1)
	_, end := partBounds(ps, num)
	return end != b.size && b.holeLocked(num, ps)
}

// cutLocked shortens the base to size bytes (a truncation).
func (b *base) cutLocked(size, ps int64) {
	if size >= b.size {
		return
	}
	b.size = size
	b.holes = 0
	for num := 1; num <= len(b.filled); num++ {
		if b.holeLocked(num, ps) {
			start, end := partBounds(ps, num)
			b.holes += min(end, b.size) - start
		}
	}
}

// prepare fetches the holes a change of [lo, hi) needs (see
// anyHoleLocked). Writes wait while it runs; the staging area accounts
// for each part before it is fetched, so a full area fails without a
// download.
func (f *File) prepare(ctx context.Context, lo, hi int64) error {
	ps := f.a.cfg.PartSize
	f.mu.Lock()
	b := f.base
	if b == nil || !b.anyHoleLocked(lo, hi, ps) {
		f.mu.Unlock()
		return nil
	}
	var todo []int
	if hi > b.size && b.lastHoleLocked(ps) {
		todo = append(todo, partAt(ps, b.size-1))
	}
	if lo < b.size && hi > lo {
		for num := partAt(ps, lo); num <= partAt(ps, min(hi, b.size)-1); num++ {
			todo = append(todo, num)
		}
	}
	f.mu.Unlock()
	for _, num := range todo {
		if err := f.fillPart(ctx, num); err != nil {
			return err
		}
	}
	return nil
}

// fillPart fetches part num of the base, if it is still a hole.
func (f *File) fillPart(ctx context.Context, num int) error {
	ps := f.a.cfg.PartSize
	f.io.Lock() // no write, upload or other fetch meanwhile
	defer f.io.Unlock()
	f.mu.Lock()
	b := f.base
	if f.removed || !b.holeLocked(num, ps) {
		f.mu.Unlock()
		return nil
	}
	start, end := partBounds(ps, num)
	end = min(end, b.size)
	b.holes -= end - start
	if err := f.growLocked(f.size); err != nil {
		b.holes += end - start
		f.mu.Unlock()
		return err
	}
	key, etag := b.key, b.etag
	f.mu.Unlock()
	if err := b.fill(ctx, key, etag, start, end-start, f.f); err != nil {
		f.mu.Lock()
		b.holes += end - start
		f.mu.Unlock()
		return err
	}
	f.mu.Lock()
	b.filled[num-1] = true
	f.mu.Unlock()
	return nil
}

// Write writes p at off as WriteAt does, fetching first the parts of a
// base object it needs.
func (f *File) Write(ctx context.Context, p []byte, off int64) (int, error) {
	if err := f.prepare(ctx, off, off+int64(len(p))); err != nil {
		return 0, err
	}
	return f.WriteAt(p, off)
}

// Resize sets the size as Truncate does, fetching first the base's last
// part when the file grows past it.
func (f *File) Resize(ctx context.Context, size int64) error {
	if err := f.prepare(ctx, size, size); err != nil {
		return err
	}
	return f.Truncate(size)
}

// Read reads as ReadAt does, fetching first the parts of a base object
// it reads.
func (f *File) Read(ctx context.Context, p []byte, off int64) (int, error) {
	if end := min(off+int64(len(p)), f.Size()); end > off {
		if err := f.prepare(ctx, off, end); err != nil {
			return 0, err
		}
	}
	return f.ReadAt(p, off)
}

// rebaseLocked records that the object key, ETag etag, now holds the
// file's bytes (after an upload): holes are copied from it from now on.
func (f *File) rebaseLocked(key, etag string) {
	if f.base != nil {
		f.base.key, f.base.etag = key, etag
	}
}

// Rebase records that the object key, ETag etag, holds the file's bytes
// (its copy after a rename).
func (f *File) Rebase(key, etag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebaseLocked(key, etag)
}
