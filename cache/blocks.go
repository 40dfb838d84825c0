package cache

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/bucketfs/bucketfs/store"
)

// blockKey names one block of one version of one object. The ETag in the
// key is what makes a cached block impossible to serve for another version.
type blockKey struct {
	bucket, key, etag string
	idx               int64
}

// pending is a block being fetched; waiters read data/err after done closes.
type pending struct {
	done chan struct{}
	data []byte
	err  error
}

// Stats counts what the data cache did; for tests, logs and metrics.
type Stats struct {
	BlockHits   int64 // blocks served from memory (or from a fetch already in flight)
	BlockMisses int64 // blocks that needed a GET
	Requests    int64 // ranged GETs sent (including retries)
	BytesRead   int64 // bytes received from the store
}

type blockCache struct {
	s   store.ObjectStore
	cfg Config
	lru *lru.Cache[blockKey, []byte]
	sem chan struct{}

	mu       sync.Mutex
	inflight map[blockKey]*pending

	hits, misses, requests, bytes atomic.Int64
}

func newBlockCache(s store.ObjectStore, cfg Config) *blockCache {
	n := int(cfg.DataBytes / cfg.BlockSize)
	if n < 1 {
		n = 1
	}
	l, err := lru.New[blockKey, []byte](n)
	if err != nil {
		panic(err) // only for n <= 0, excluded above
	}
	return &blockCache{
		s:        s,
		cfg:      cfg,
		lru:      l,
		sem:      make(chan struct{}, cfg.MaxRequests),
		inflight: make(map[blockKey]*pending),
	}
}

// Stats returns the data cache counters.
func (c *Cache) Stats() Stats {
	d := c.data
	return Stats{
		BlockHits:   d.hits.Load(),
		BlockMisses: d.misses.Load(),
		Requests:    d.requests.Load(),
		BytesRead:   d.bytes.Load(),
	}
}

// object identifies the version being read and its size.
type object struct {
	bucket, key, etag string
	size              int64
}

func (o object) block(idx int64) blockKey {
	return blockKey{bucket: o.bucket, key: o.key, etag: o.etag, idx: idx}
}

// request makes sure blocks [from, to] are cached or in flight, starting
// GETs of up to MaxRunBlocks contiguous missing blocks each.
func (b *blockCache) request(o object, from, to int64) {
	var runs [][]blockKey
	var run []blockKey
	flush := func() {
		if len(run) > 0 {
			runs = append(runs, run)
			run = nil
		}
	}
	b.mu.Lock()
	for i := from; i <= to; i++ {
		k := o.block(i)
		if _, busy := b.inflight[k]; busy || b.lru.Contains(k) {
			flush()
			continue
		}
		b.inflight[k] = &pending{done: make(chan struct{})}
		run = append(run, k)
		if len(run) == b.cfg.MaxRunBlocks {
			flush()
		}
	}
	flush()
	b.mu.Unlock()
	for _, r := range runs {
		go b.fetch(o, r)
	}
}

// fetch GETs one run of contiguous blocks and completes their pendings.
// It runs detached from any reader: several readers may wait for it.
func (b *blockCache) fetch(o object, run []blockKey) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RequestTimeout)
	defer cancel()
	bs := b.cfg.BlockSize
	off := run[0].idx * bs
	n := min(int64(len(run))*bs, o.size-off)
	buf := make([]byte, n)

	var err error
	for attempt := 0; ; attempt++ {
		b.sem <- struct{}{}
		b.requests.Add(1)
		var got int
		got, err = b.s.ReadAt(ctx, o.bucket, o.key, o.etag, buf, off)
		<-b.sem
		b.bytes.Add(int64(got))
		if errors.Is(err, io.EOF) && int64(got) == n {
			err = nil
		}
		if err == nil && int64(got) < n {
			err = io.ErrUnexpectedEOF // the object is shorter than its listing said
		}
		if err == nil || !retryable(err) || attempt >= 2 || ctx.Err() != nil {
			break
		}
		b.cfg.Logger.Debug("retrying ranged GET", "bucket", o.bucket, "key", o.key, "offset", off, "err", err)
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	for i, k := range run {
		p := b.inflight[k]
		delete(b.inflight, k)
		if err != nil {
			p.err = err
		} else {
			lo := int64(i) * bs
			hi := min(lo+bs, n)
			// Copy so that each cached block owns exactly its bytes and
			// evicting it frees them.
			p.data = append([]byte(nil), buf[lo:hi]...)
			b.lru.Add(k, p.data)
		}
		close(p.done)
	}
}

// retryable says whether a failed GET is worth sending again. The sentinel
// errors are answers, not accidents.
func retryable(err error) bool {
	for _, s := range []error{store.ErrChanged, store.ErrNotFound, store.ErrAccessDenied, store.ErrAuth, context.Canceled} {
		if errors.Is(err, s) {
			return false
		}
	}
	return true
}

// get returns block idx, fetching it (as part of a run up to runEnd) when
// it is neither cached nor in flight.
func (b *blockCache) get(ctx context.Context, o object, idx, runEnd int64) ([]byte, error) {
	k := o.block(idx)
	for {
		if data, ok := b.lru.Get(k); ok {
			b.hits.Add(1)
			return data, nil
		}
		b.mu.Lock()
		p := b.inflight[k]
		b.mu.Unlock()
		if p == nil {
			b.misses.Add(1)
			b.request(o, idx, runEnd)
			b.mu.Lock()
			p = b.inflight[k]
			b.mu.Unlock()
			if p == nil {
				continue // fetched and cached (or evicted) in between: look again
			}
		} else {
			b.hits.Add(1)
		}
		select {
		case <-p.done:
			return p.data, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Reader reads one version of one object through the block cache. It
// detects sequential access and keeps a read-ahead window that doubles on
// each sequential read up to MaxReadAhead, and drops to nothing on a
// random read (so a Parquet footer read does not pull the whole file).
// It is safe for concurrent use: the kernel issues reads in parallel.
type Reader struct {
	c      *Cache
	obj    object
	pinned store.Object

	mu     sync.Mutex
	next   int64 // where a sequential reader would read next
	window int64 // current read-ahead in bytes
	ahead  int64 // read-ahead has been requested up to here
}

// Open returns a Reader pinned to obj's ETag and size.
func (c *Cache) Open(bucket string, obj store.Object) *Reader {
	return &Reader{c: c, pinned: obj, obj: object{bucket: bucket, key: obj.Key, etag: obj.ETag, size: obj.Size}}
}

// Object returns the metadata of the version this Reader is pinned to.
func (r *Reader) Object() store.Object { return r.pinned }

// ReadAt reads len(p) bytes at off, fewer at the end of the object. When the
// object changed since open it returns an error wrapping store.ErrChanged
// and forgets the cached metadata so the next open sees the new version.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	size := r.obj.size
	if off >= size || len(p) == 0 {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	bs := r.c.cfg.BlockSize
	first, last := off/bs, (end-1)/bs

	raFrom, raTo := r.plan(off, end)
	demandEnd := last
	if raTo >= 0 && raFrom == last+1 {
		// Let the demand GET also cover the start of the read-ahead.
		demandEnd = min(raTo, first+int64(r.c.cfg.MaxRunBlocks)-1)
	}
	if raTo >= raFrom && raTo >= 0 {
		r.c.data.request(r.obj, raFrom, raTo)
	}

	n := 0
	for i := first; i <= last; i++ {
		data, err := r.c.data.get(ctx, r.obj, i, max(demandEnd, i))
		if err != nil {
			if errors.Is(err, store.ErrChanged) {
				r.c.Forget(r.obj.bucket, r.obj.key)
			}
			return n, err
		}
		blockStart := i * bs
		lo := max(off, blockStart) - blockStart
		hi := min(end, blockStart+int64(len(data))) - blockStart
		if lo >= hi {
			return n, io.ErrUnexpectedEOF
		}
		n += copy(p[n:], data[lo:hi])
	}
	if end == size {
		return n, io.EOF
	}
	return n, nil
}

// plan updates the sequential-access state for a read of [off, end) and
// returns the block range to read ahead (raTo < raFrom when none).
func (r *Reader) plan(off, end int64) (raFrom, raTo int64) {
	bs := r.c.cfg.BlockSize
	r.mu.Lock()
	defer r.mu.Unlock()
	// The kernel sends reads of one sequential stream in parallel and
	// slightly out of order; count a read as sequential when it starts
	// near where the last one ended.
	slack := max(r.window, 2*bs)
	if off >= r.next-slack && off <= r.next+slack {
		r.window = min(max(2*r.window, bs), r.c.cfg.MaxReadAhead)
		r.next = max(r.next, end)
	} else {
		r.window, r.ahead, r.next = 0, 0, end
	}
	target := min(end+r.window, r.obj.size)
	from := max(end, r.ahead)
	// Top the window up only once half of it has been consumed, so that
	// read-ahead goes out in long runs rather than a block at a time.
	if r.window == 0 || target <= from || (r.ahead-end > r.window/2 && target < r.obj.size) {
		return 0, -1
	}
	r.ahead = target
	return from / bs, (target - 1) / bs
}
