package stage

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bucketfs/bucketfs/store"
)

// partsPerTier parts of one size, then parts twice as big: a file whose
// final size nobody knows while it is written can still fit S3's 10,000
// parts (with 16 MiB parts, the default, the first 1,000 reach 15.6 GiB,
// and the ninth tier's 4 GiB parts take a file past S3's 5 TiB limit).
const partsPerTier = 1000

// partBounds returns the byte range [start, end) of part num (1-based) in
// the layout that starts with parts of ps bytes.
func partBounds(ps int64, num int) (start, end int64) {
	tier := (num - 1) / partsPerTier
	start = partsPerTier * ps * (1<<tier - 1)
	size := ps << tier
	start += int64((num-1)%partsPerTier) * size
	return start, start + size
}

// partAt returns the number of the part holding byte off.
func partAt(ps int64, off int64) int {
	tierStart := int64(0)
	for tier := 0; ; tier++ {
		size := ps << tier
		tierEnd := tierStart + partsPerTier*size
		if off < tierEnd {
			return tier*partsPerTier + int((off-tierStart)/size) + 1
		}
		tierStart = tierEnd
	}
}

// numParts is how many parts a file of size bytes has (at least one).
func numParts(ps, size int64) int {
	if size == 0 {
		return 1
	}
	return partAt(ps, size-1)
}

// stream is the multipart upload of one staging file. While a file grows
// by appending, each part is sent as soon as it is complete, so the upload
// runs alongside the writing; at Upload only what is left (the last part,
// and parts changed after they were sent) goes out before the completion.
// Every touch of a part bumps its generation; a part counts as sent only
// with the generation and size it was sent with.
type stream struct {
	f *File

	// Fields below are guarded by f.mu.
	bucket, key string // where background parts go; "" for nowhere
	up          store.Upload
	starting    bool
	noStart     bool // a background start failed: wait for Upload
	clock       uint64
	gen         []uint64 // by part index (number-1)
	sent        []uint64
	sentSize    []int64
	inflight    map[int]bool
	stopc       chan struct{} // closed to cancel background work
	failed      error         // the last background failure, for the log
	wg          sync.WaitGroup
	sem         chan struct{}
}

func (s *stream) init(f *File) {
	s.f = f
	s.inflight = map[int]bool{}
	s.stopc = make(chan struct{})
	s.sem = make(chan struct{}, f.a.cfg.Concurrency)
}

func (s *stream) ps() int64 { return s.f.a.cfg.PartSize }

// touchedLocked records a change of bytes [lo, hi).
func (s *stream) touchedLocked(lo, hi int64) {
	if hi <= lo {
		return
	}
	first, last := partAt(s.ps(), lo), partAt(s.ps(), hi-1)
	for len(s.gen) < last {
		s.gen = append(s.gen, 0)
		s.sent = append(s.sent, 0)
		s.sentSize = append(s.sentSize, 0)
	}
	s.clock++
	for num := first; num <= last; num++ {
		s.gen[num-1] = s.clock
	}
}

// dirtyLocked reports whether part num must be sent for a file of size
// bytes.
func (s *stream) dirtyLocked(num int, size int64) bool {
	start, end := partBounds(s.ps(), num)
	want := min(end, size) - start
	if num > len(s.gen) {
		// Never written: a hole (truncate up) or an empty file.
		return true
	}
	return s.sent[num-1] != s.gen[num-1] || s.sentSize[num-1] != want
}

// SetTarget names the object background parts go to. A different target
// discards the upload under way; "" stops background uploads.
func (f *File) SetTarget(bucket, key string) {
	s := &f.stream
	f.mu.Lock()
	if s.bucket == bucket && s.key == key {
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	s.stop()
	f.mu.Lock()
	s.bucket, s.key = bucket, key
	f.mu.Unlock()
}

// wrote starts the upload of parts an appending write completed.
func (s *stream) wrote() {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.key == "" || f.removed || f.size <= f.a.cfg.Threshold {
		return
	}
	if s.up == nil {
		if !s.starting && !s.noStart {
			s.starting = true
			s.wg.Add(1)
			go s.start(s.bucket, s.key, s.stopc)
		}
		return
	}
	s.launchLocked()
}

// start begins the background multipart upload, then sends what is ready.
func (s *stream) start(bucket, key string, stopc chan struct{}) {
	defer s.wg.Done()
	ctx, cancel := s.context(stopc)
	defer cancel()
	up, err := s.f.a.cfg.Writer.StartUpload(ctx, bucket, key)
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	s.starting = false
	if err != nil || s.stopc != stopc {
		if err != nil {
			s.failed, s.noStart = err, true
			f.a.cfg.Logger.Debug("background multipart upload did not start; the file will be uploaded at close", "bucket", bucket, "key", key, "err", err)
		} else {
			go abortQuietly(up, f.a.cfg.PartTimeout)
		}
		return
	}
	s.up = up
	s.launchLocked()
}

// launchLocked sends every complete, changed part not already in flight.
func (s *stream) launchLocked() {
	f := s.f
	full := partAt(s.ps(), f.size) - 1 // parts entirely below f.size
	for num := 1; num <= full; num++ {
		if s.inflight[num] || !s.dirtyLocked(num, f.size) || (f.base != nil && f.base.holeLocked(num, s.ps())) {
			continue // holes are copied on the server at the end
		}
		start, end := partBounds(s.ps(), num)
		s.inflight[num] = true
		s.wg.Add(1)
		go s.send(s.up, s.stopc, num, s.gen[num-1], start, end-start)
	}
}

// send uploads one part in the background.
func (s *stream) send(up store.Upload, stopc chan struct{}, num int, gen uint64, start, size int64) {
	defer s.wg.Done()
	select {
	case s.sem <- struct{}{}:
	case <-stopc:
		s.f.mu.Lock()
		delete(s.inflight, num)
		s.f.mu.Unlock()
		return
	}
	defer func() { <-s.sem }()
	ctx, cancel := s.context(stopc)
	defer cancel()
	err := up.PutPart(ctx, num, io.NewSectionReader(s.f.f, start, size), size)
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(s.inflight, num)
	if s.up != up {
		return
	}
	if err != nil {
		s.failed = err
		return
	}
	s.sent[num-1], s.sentSize[num-1] = gen, size
}

// context is a context for background work: canceled by stop, bounded by
// the part timeout.
func (s *stream) context(stopc chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(s.f.a.background(context.Background()), s.f.a.cfg.PartTimeout)
	go func() {
		select {
		case <-stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// stop cancels background work, waits for it and aborts the upload under
// way. The stream is then empty: nothing counts as sent.
func (s *stream) stop() {
	f := s.f
	f.mu.Lock()
	close(s.stopc)
	s.stopc = make(chan struct{})
	up := s.up
	s.up = nil
	f.mu.Unlock()
	s.wg.Wait()
	f.mu.Lock()
	s.resetLocked()
	f.mu.Unlock()
	if up != nil {
		abortQuietly(up, f.a.cfg.PartTimeout)
	}
}

func (s *stream) resetLocked() {
	for i := range s.sent {
		s.sent[i], s.sentSize[i] = 0, 0
	}
	s.failed, s.noStart = nil, false
}

func abortQuietly(up store.Upload, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = up.Abort(ctx)
}

// Upload stores the staged bytes as bucket/key under the conditions of
// opts and returns the new object. Writes wait while it runs, so the
// object is one snapshot. Small files go up in one PutObject; larger ones
// complete the background multipart upload (or start one), sending the
// parts not yet sent, in parallel. A failed multipart upload is aborted;
// the staged bytes stay, so a later Upload can try again.
func (f *File) Upload(ctx context.Context, bucket, key string, opts store.PutOptions) (store.Object, error) {
	f.SetTarget(bucket, key)
	if size := f.Size(); size <= f.a.cfg.Threshold {
		// One PutObject sends every byte: fetch the base's holes.
		if err := f.prepare(ctx, 0, size); err != nil {
			return store.Object{}, err
		}
	}
	// Held across the upload's requests, on purpose (one snapshot): a
	// write waits for at most the upload's own bounds (PartTimeout per
	// request); the FUSE layer's upload lock, which a request waits on
	// first, can be interrupted.
	f.io.Lock()
	defer f.io.Unlock()
	s := &f.stream
	f.mu.Lock()
	if f.removed {
		f.mu.Unlock()
		return store.Object{}, os.ErrClosed
	}
	size := f.size
	f.mu.Unlock()
	cfg := f.a.cfg
	if size <= cfg.Threshold {
		s.stop() // the file shrank below the threshold: no parts
		pctx, cancel := context.WithTimeout(ctx, cfg.PartTimeout)
		defer cancel()
		f.mu.Lock()
		holes := f.holesLocked()
		f.mu.Unlock()
		if holes > 0 {
			return store.Object{}, errNotLocal // never send a hole's zeros
		}
		o, err := cfg.Writer.PutIf(pctx, bucket, key, io.NewSectionReader(f.f, 0, size), size, opts)
		if err != nil {
			return store.Object{}, err
		}
		o.Size = size
		f.Rebase(key, o.ETag)
		f.landed(bucket, key, o)
		return o, nil
	}
	// Let the parts in flight land (they read bytes no write can change
	// now), so that they need not be sent again.
	t0 := time.Now()
	s.wg.Wait()
	waited := time.Since(t0)
	f.mu.Lock()
	up := s.up
	f.mu.Unlock()
	if up == nil {
		pctx, cancel := context.WithTimeout(ctx, cfg.PartTimeout)
		var err error
		up, err = cfg.Writer.StartUpload(pctx, bucket, key)
		cancel()
		if err != nil {
			return store.Object{}, err
		}
		f.mu.Lock()
		s.up = up
		f.mu.Unlock()
	}
	o, err := f.finish(ctx, up, size, opts, waited)
	// Whatever happened, this upload is over: completed, or aborted so no
	// parts linger.
	f.mu.Lock()
	s.up = nil
	s.resetLocked()
	f.mu.Unlock()
	if err != nil {
		abortQuietly(up, cfg.PartTimeout)
		return store.Object{}, err
	}
	o.Size = size
	f.Rebase(key, o.ETag)
	f.landed(bucket, key, o)
	return o, nil
}

// landed hands the uploaded bytes to Config.Landed while the upload still
// holds writes off, so they are the object's bytes. A file with parts of
// its base object copied on the server has no local copy of them: skipped.
func (f *File) landed(bucket, key string, o store.Object) {
	if f.a.cfg.Landed == nil {
		return
	}
	f.mu.Lock()
	holes := f.holesLocked()
	f.mu.Unlock()
	if holes == 0 {
		f.a.cfg.Landed(bucket, key, o, io.NewSectionReader(f.f, 0, o.Size))
	}
}

// finish sends the parts that are missing or changed, copies on the
// server the holes of a base object, and completes.
func (f *File) finish(ctx context.Context, up store.Upload, size int64, opts store.PutOptions, waited time.Duration) (store.Object, error) {
	s := &f.stream
	cfg := f.a.cfg
	n := numParts(s.ps(), size)
	if n > store.MaxParts {
		return store.Object{}, fmt.Errorf("%d bytes need %d parts, more than S3 allows", size, n)
	}
	type job struct {
		num       int
		copy      bool
		key, etag string
	}
	var todo []job
	f.mu.Lock()
	for num := 1; num <= n; num++ {
		switch {
		case f.base != nil && f.base.holeLocked(num, s.ps()):
			todo = append(todo, job{num: num, copy: true, key: f.base.key, etag: f.base.etag})
		case s.dirtyLocked(num, size):
			todo = append(todo, job{num: num})
		}
	}
	f.mu.Unlock()
	t1 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	copied := 0
	for _, j := range todo {
		if gctx.Err() != nil {
			break
		}
		start, end := partBounds(s.ps(), j.num)
		end = min(end, size)
		if j.copy {
			copied++
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another part failed
			}
			pctx, cancel := context.WithTimeout(gctx, cfg.PartTimeout)
			defer cancel()
			if j.copy {
				return up.CopyPart(pctx, j.num, j.key, j.etag, start, end-start)
			}
			return up.PutPart(pctx, j.num, io.NewSectionReader(f.f, start, end-start), end-start)
		})
	}
	if err := g.Wait(); err != nil {
		return store.Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	sent := time.Since(t1)
	cctx, cancel := context.WithTimeout(ctx, cfg.PartTimeout)
	defer cancel()
	t2 := time.Now()
	o, err := up.Complete(cctx, n, opts)
	cfg.Logger.Debug("multipart upload", "parts", n, "sent_at_close", len(todo)-copied, "copied_on_server", copied,
		"waited_for_background", waited, "sending", sent, "completing", time.Since(t2))
	return o, err
}
