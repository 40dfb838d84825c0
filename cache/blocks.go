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
	s      store.ObjectStore
	cfg    Config
	lru    *lru.Cache[blockKey, []byte]
	sem    chan struct{} // GETs in flight
	budget *budget       // bytes of GETs in flight
	bufs   sync.Pool     // run buffers of MaxRunBlocks blocks

	active atomic.Int64 // open Readers, to share the cache between their read-ahead

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
	runBytes := int64(cfg.MaxRunBlocks) * cfg.BlockSize
	b := &blockCache{
		s:        s,
		cfg:      cfg,
		lru:      l,
		sem:      make(chan struct{}, cfg.MaxRequests),
		budget:   newBudget(max(cfg.MaxInflightBytes, runBytes)),
		inflight: make(map[blockKey]*pending),
	}
	b.bufs.New = func() any {
		buf := make([]byte, runBytes)
		return &buf
	}
	return b
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

// blocks is how many blocks the object has.
func (o object) blocks(bs int64) int64 { return (o.size + bs - 1) / bs }

func (o object) block(idx int64) blockKey {
	return blockKey{bucket: o.bucket, key: o.key, etag: o.etag, idx: idx}
}

// request makes sure blocks [from, to] are cached or in flight, starting
// GETs of up to MaxRunBlocks contiguous missing blocks each. demand marks
// blocks a reader waits for now; they go ahead of read-ahead and prefetch.
func (b *blockCache) request(o object, from, to int64, demand bool) {
	if to >= o.blocks(b.cfg.BlockSize) {
		to = o.blocks(b.cfg.BlockSize) - 1
	}
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
		go b.fetch(o, r, demand)
	}
}

// fetch GETs one run of contiguous blocks and completes their pendings.
// It runs detached from any reader: several readers may wait for it.
func (b *blockCache) fetch(o object, run []blockKey, demand bool) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RequestTimeout)
	defer cancel()
	bs := b.cfg.BlockSize
	off := run[0].idx * bs
	n := min(int64(len(run))*bs, o.size-off)

	b.budget.acquire(n, demand)
	defer b.budget.release(n)
	pooled := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(pooled)
	buf := (*pooled)[:n]

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
			// Copy out of the pooled run buffer so that each cached block
			// owns exactly its bytes and evicting it frees them.
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
			b.request(o, idx, runEnd, true)
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

// budget bounds the bytes of GETs in flight, so memory stays within the
// cache size plus a fixed overhead however many readers there are. A
// quarter of it is kept for demand reads: a reader waiting for a block
// never queues behind a wall of read-ahead.
type budget struct {
	mu      sync.Mutex
	cond    *sync.Cond
	total   int64
	avail   int64
	reserve int64
}

func newBudget(n int64) *budget {
	b := &budget{total: n, avail: n, reserve: n / 4}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *budget) acquire(n int64, demand bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	need := n
	if !demand {
		need = min(n+b.reserve, b.total)
	}
	for b.avail < need {
		b.cond.Wait()
	}
	b.avail -= n
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.avail += n
	b.mu.Unlock()
	b.cond.Broadcast()
}
