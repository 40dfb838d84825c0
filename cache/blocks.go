package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
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
	data *block
	err  error
}

// arrived reports whether the fetch has completed (with bytes or not).
func (p *pending) arrived() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stats counts what the data cache did; for tests, logs and metrics.
type Stats struct {
	BlockHits   int64 // blocks served from memory (or from a fetch already in flight)
	BlockMisses int64 // blocks not in memory: read from the disk tier (Config.Disk) or by a GET
	Requests    int64 // ranged GETs sent (including retries)
	BytesRead   int64 // bytes received from the store
	// CachedBytes is the data held in the block cache now, CapacityBytes
	// what it may hold (--cache-size).
	CachedBytes, CapacityBytes int64
}

type blockCache struct {
	s      store.ObjectStore
	cfg    Config
	ctx    context.Context // ends when the cache is closed: fetches stop
	lru    *lru.Cache[blockKey, *block]
	pool   *bufPool      // buffers of evicted blocks, for the next fetches
	sem    chan struct{} // GETs in flight
	budget *budget       // bytes of GETs in flight

	active atomic.Int64 // open Readers, to share the cache between their read-ahead

	mu       sync.Mutex
	inflight map[blockKey]*pending

	hits, misses, requests, bytes atomic.Int64
	cached                        atomic.Int64 // bytes of the blocks in lru
}

func newBlockCache(ctx context.Context, s store.ObjectStore, cfg Config) *blockCache {
	n := int(cfg.DataBytes / cfg.BlockSize)
	if n < 1 {
		n = 1
	}
	runBytes := int64(cfg.MaxRunBlocks) * cfg.BlockSize
	b := &blockCache{
		s:        s,
		cfg:      cfg,
		ctx:      ctx,
		sem:      make(chan struct{}, cfg.MaxRequests),
		budget:   newBudget(max(cfg.MaxInflightBytes, runBytes)),
		inflight: make(map[blockKey]*pending),
		pool:     newBufPool(cfg.BlockSize),
	}
	var err error
	b.lru, err = lru.NewWithEvict(n, func(_ blockKey, v *block) {
		b.cached.Add(-int64(len(v.data)))
		v.release(b.pool)
	})
	if err != nil {
		panic(err) // only for n <= 0, excluded above
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

		CachedBytes:   d.cached.Load(),
		CapacityBytes: d.cfg.DataBytes,
	}
}

// object identifies the version being read and its size.
type object struct {
	bucket, key, etag string
	size              int64
	vals              context.Context // the reader's identity, for fetches (scope.go); nil: none
}

// blocks is how many blocks the object has.
func (o object) blocks(bs int64) int64 { return (o.size + bs - 1) / bs }

func (o object) block(idx int64) blockKey {
	return blockKey{bucket: o.bucket, key: o.key, etag: o.etag, idx: idx}
}

// request makes sure blocks [from, to] are cached or in flight, starting
// GETs of up to MaxRunBlocks contiguous missing blocks each, and returns
// the pending fetch of each block (nil for a block already cached), so a
// waiter sees the outcome of the very fetch it caused, even a failure.
// demand marks blocks a reader waits for now: they go ahead of read-ahead
// and prefetch, and count in the hit/miss statistics.
func (b *blockCache) request(o object, from, to int64, demand bool) []*pending {
	to = min(to, o.blocks(b.cfg.BlockSize)-1)
	if to < from {
		return nil
	}
	pend := make([]*pending, to-from+1)
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
		if p, busy := b.inflight[k]; busy || b.lru.Contains(k) {
			pend[i-from] = p
			if demand {
				b.hits.Add(1)
			}
			flush()
			continue
		}
		p := &pending{done: make(chan struct{})}
		b.inflight[k], pend[i-from] = p, p
		if demand {
			b.misses.Add(1)
		}
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
	return pend
}

// has reports whether blocks [from, to] are all cached or in flight.
func (b *blockCache) has(o object, from, to int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := from; i <= to; i++ {
		k := o.block(i)
		if _, busy := b.inflight[k]; !busy && !b.lru.Contains(k) {
			return false
		}
	}
	return true
}

// drop removes blocks [from, to] from the cache (a sequential reader has
// left them behind); their buffers are reused once no reply holds them.
func (b *blockCache) drop(o object, from, to int64) {
	for i := from; i <= to; i++ {
		b.lru.Remove(o.block(i))
	}
}

// fetch GETs one run of contiguous blocks with one ranged GET and hands
// out each block as soon as its bytes have arrived. A transfer that breaks
// part-way is resumed from the first missing block. It runs detached from
// any reader: several readers may wait for it.
func (b *blockCache) fetch(o object, run []blockKey, demand bool) {
	defer func() {
		// This goroutine serves no FUSE request, so nothing above would
		// recover a panic: fail the blocks instead of the daemon.
		if r := recover(); r != nil {
			b.cfg.Logger.Error("panic fetching blocks", "bucket", o.bucket, "key", o.key, "panic", r, "stack", string(debug.Stack()))
			b.mu.Lock()
			var left []blockKey
			for _, k := range run {
				if _, ok := b.inflight[k]; ok {
					left = append(left, k)
				}
			}
			b.mu.Unlock()
			b.finish(left, nil, fmt.Errorf("internal error fetching %s/%s: %v", o.bucket, o.key, r))
		}
	}()
	// The whole fetch, the wait for room in the budget and for a request
	// slot included, is bounded by the request timeout: a reader waits
	// for nothing longer.
	ctx, cancel := context.WithTimeout(withValues(b.ctx, o.vals), b.cfg.RequestTimeout)
	defer cancel()
	bs := b.cfg.BlockSize
	off := run[0].idx * bs
	n := min(int64(len(run))*bs, o.size-off)
	if err := b.budget.acquire(ctx, n, demand); err != nil {
		b.finish(run, nil, fmt.Errorf("%s/%s at %d: no room to download (too many reads in flight): %w", o.bucket, o.key, off, err))
		return
	}
	held := n
	defer func() { b.budget.release(held) }()
	if run = b.fromDisk(ctx, o, run, &held, demand); len(run) == 0 {
		return
	}

	var err error
	for attempt := 0; len(run) > 0; attempt++ {
		if attempt > 0 {
			if !retryable(err) || attempt > 2 || ctx.Err() != nil {
				break
			}
			b.cfg.Logger.Debug("retrying ranged GET", "bucket", o.bucket, "key", o.key, "offset", run[0].idx*bs, "err", err)
			if !sleep(ctx, time.Duration(50<<attempt)*time.Millisecond) {
				break
			}
		}
		var done int
		done, err = b.stream(ctx, o, run)
		for _, k := range run[:done] {
			size := min(bs, o.size-k.idx*bs)
			b.budget.release(size)
			held -= size
		}
		run = run[done:]
		if err == nil {
			break
		}
		if done > 0 {
			attempt = 0 // the transfer moved: only attempts that brought nothing count
		}
	}
	if len(run) > 0 {
		b.finish(run, nil, err)
	}
}

// stream sends one GET for the blocks of run and completes them in order
// as their bytes arrive; it returns how many it completed.
func (b *blockCache) stream(ctx context.Context, o object, run []blockKey) (int, error) {
	bs := b.cfg.BlockSize
	off := run[0].idx * bs
	n := min(int64(len(run))*bs, o.size-off)
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("%s/%s at %d: waiting for a request slot: %w", o.bucket, o.key, off, ctx.Err())
	}
	defer func() { <-b.sem }()
	b.requests.Add(1)

	// A transfer that stops moving (a stalled server, a half-dead
	// connection) is cut after StallTimeout without progress and sent
	// again, instead of holding readers for the whole request timeout.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(b.cfg.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	stalled := func(err error) error {
		if context.Cause(sctx) == errStalled {
			return fmt.Errorf("%s/%s at %d: %w", o.bucket, o.key, off, errStalled)
		}
		return err
	}

	body, err := b.s.ReadRange(sctx, o.bucket, o.key, o.etag, off, n)
	if err != nil {
		return 0, stalled(err)
	}
	defer body.Close()
	var pr io.Reader = &progressReader{r: body, t: stall, d: b.cfg.StallTimeout}
	sums := b.summer(&pr)
	var toDisk []kept // handed to the disk tier as one run when the GET ends
	if b.cfg.Disk != nil && o.etag != "" {
		toDisk = make([]kept, 0, len(run))
		defer func() { b.keep(ctx, o, toDisk) }()
	}
	for i, k := range run {
		data := b.pool.get(min(bs, o.size-k.idx*bs))
		got, err := io.ReadFull(pr, data)
		b.bytes.Add(int64(got))
		if err != nil {
			b.pool.put(data) // seen by no one
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("%s/%s: object shorter than its listed size %d: %w", o.bucket, o.key, o.size, io.ErrUnexpectedEOF)
			}
			return i, stalled(err)
		}
		blk := newBlock(data)
		if toDisk != nil {
			blk.refs.Add(1) // the disk tier's (keep)
			toDisk = append(toDisk, kept{idx: k.idx, blk: blk, sum: sums.Next()})
		}
		b.finish(run[i:i+1], blk, nil)
	}
	return len(run), nil
}

// errStalled marks a transfer cut for making no progress; it is retried.
var errStalled = errors.New("transfer stalled")

// progressReader pushes the stall timer back whenever bytes arrive.
type progressReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.t.Reset(p.d)
	}
	return n, err
}

// finish completes the pendings of keys with data (cached; one key) or err.
func (b *blockCache) finish(keys []blockKey, data *block, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		p := b.inflight[k]
		delete(b.inflight, k)
		p.data, p.err = data, err
		if err == nil {
			if old, ok := b.lru.Peek(k); ok {
				// Replaced, not evicted: the LRU calls no one.
				b.cached.Add(-int64(len(old.data)))
				old.release(b.pool)
			}
			b.cached.Add(int64(len(data.data)))
			b.lru.Add(k, data)
		}
		close(p.done)
	}
}

// retryable says whether a failed GET is worth sending again. The sentinel
// errors are answers, not accidents. A throttled GET was already retried,
// with back-off, by the SDK: sending it again would only add to the load
// the server asked us to shed.
func retryable(err error) bool {
	for _, s := range []error{store.ErrChanged, store.ErrNotFound, store.ErrAccessDenied, store.ErrAuth, store.ErrThrottled,
		context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			return false
		}
	}
	return true
}

// get returns block idx, waiting for p (the fetch request returned for it)
// when there is one, else taking it from the cache or fetching it anew. The
// bytes stay valid until the Hold is released.
func (b *blockCache) get(ctx context.Context, o object, idx int64, p *pending) ([]byte, Hold, error) {
	k := o.block(idx)
	for {
		if p == nil {
			if blk, ok := b.lru.Get(k); ok && blk.tryRetain() {
				return blk.data, Hold{b: blk, pool: b.pool}, nil
			}
			// Evicted since it was requested: ask again.
			p = b.request(o, idx, idx, true)[0]
			continue
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, Hold{}, ctx.Err()
		}
		if p.err != nil {
			return nil, Hold{}, p.err
		}
		if p.data.tryRetain() {
			return p.data.data, Hold{b: p.data, pool: b.pool}, nil
		}
		p = nil // evicted and its buffer reused since it arrived: ask again
	}
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// budget bounds the bytes of GETs in flight, so memory stays within the
// cache size plus a fixed overhead however many readers there are. A
// quarter of it is kept for demand reads: a reader waiting for a block
// never queues behind a wall of read-ahead.
type budget struct {
	mu      sync.Mutex
	total   int64
	avail   int64
	reserve int64
	// freed is closed (and replaced) whenever bytes are released; it
	// wakes the waiters, which, unlike a sync.Cond's, can also give up.
	freed chan struct{}
}

func newBudget(n int64) *budget {
	return &budget{total: n, avail: n, reserve: n / 4, freed: make(chan struct{})}
}

// acquire takes n bytes, waiting until they are free or ctx ends. The
// mutex is never held across the wait.
func (b *budget) acquire(ctx context.Context, n int64, demand bool) error {
	need := n
	if !demand {
		need = min(n+b.reserve, b.total)
	}
	for {
		b.mu.Lock()
		if b.avail >= need {
			b.avail -= n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.avail += n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}
