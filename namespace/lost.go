package namespace

import (
	"errors"
	"fmt"
	"syscall"
)

// Lost bytes. A write that fails for want of staging space (ENOSPC, the
// area or the writer's share of it full) leaves the staged file without
// those bytes. The writer was told, but uploading at close what was staged
// would replace the object with a file that has a hole or a cut end, which
// no reader could tell from the real thing. So the range is remembered: a
// later write that covers it (the writer trying again once there is room),
// or a truncate below it, forgets it; otherwise the upload is refused, the
// close returns ENOSPC, the file is dropped as a refused one is
// (identity.go), and the object keeps its old version (a new file is not
// created).

// ErrDropped is in the error of a close or fsync after which the file is
// no longer under its name (lost bytes, or an upload S3 refused the
// writer): the name shows the object as S3 has it, or nothing.
var ErrDropped = errors.New("the file is dropped")

// lostRange is the span of bytes writes failed to stage; err is nil when
// there is none.
type lostRange struct {
	from, to int64
	err      error
}

// add widens the range by [from, to), which failed with err.
func (l *lostRange) add(from, to int64, err error) {
	if l.err == nil {
		*l = lostRange{from, to, err}
		return
	}
	l.from, l.to = min(l.from, from), max(l.to, to)
}

// cover forgets the range if [from, to) was written in full over it.
func (l *lostRange) cover(from, to int64) {
	if l.err != nil && from <= l.from && to >= l.to {
		*l = lostRange{}
	}
}

// cut forgets the range if a truncate to size removed it.
func (l *lostRange) cut(size int64) {
	if l.err != nil && size <= l.from {
		*l = lostRange{}
	}
}

// wrote records the outcome of a write of want bytes at off, n of which
// were staged: bytes lost for want of space, or a rewrite that replaced
// them. Other failures (an interrupted fetch, a changed object) stage
// nothing the caller does not know to write again, or end the file's
// writing anyway.
func (w *wfile) wrote(off int64, n, want int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.lost.cover(off, off+int64(n))
	case errors.Is(err, syscall.ENOSPC):
		w.lost.add(off+int64(n), off+int64(want), err)
	}
}

// abandon drops w at an upload because it lost bytes: nothing is sent, and
// this close and every later write, close or fsync of w return ENOSPC.
func (w *wfile) abandon() error {
	w.mu.Lock()
	bucket, key, lost := w.bucket, w.key, w.lost
	w.mu.Unlock()
	err := w.dropFor(fmt.Errorf("%s/%s not uploaded: bytes %d to %d could not be staged and were not written again (%w); %w, the object is unchanged",
		bucket, key, lost.from, lost.to, lost.err, ErrDropped))
	w.ns.log.Error("a write failed for want of staging space and was not written again: the file is not uploaded, so no cut-short object replaces the old one (ENOSPC at close)",
		"bucket", bucket, "key", key, "writer", w.id.Key, "from", lost.from, "to", lost.to)
	return err
}

// dropFor drops w for good, why being what this and every later write,
// close or fsync of w return: nothing more is uploaded, the name leaves
// the registry (it shows the object as S3 has it, or nothing), and the
// staged bytes go with the last handle (closeHandle).
func (w *wfile) dropFor(why error) error {
	w.mu.Lock()
	w.refused = why
	w.dirty = false
	w.mu.Unlock()
	w.ns.writes.remove(w)
	return why
}
