package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// wholeFileAfter is how many random reads of one handle make a file that
// fits comfortably in the cache worth fetching whole, in parallel. One or
// two reads (a Parquet footer, a header probe) never trigger it.
const wholeFileAfter = 4

// Reader reads one version of one object through the block cache. It
// detects sequential access and keeps a read-ahead window that doubles on
// each sequential read, and drops to nothing on a random read (so a Parquet
// footer read does not pull the whole file). Repeated random reads of a
// file that fits in half of the cache fetch it whole, in parallel.
// It is safe for concurrent use: the kernel issues reads in parallel.
//
// Until a run of reads has earned it (it started at the beginning of the
// file, or has gone on for a block), bytes not cached are fetched exactly
// as asked, not as whole blocks: the footer and column chunks a Parquet
// reader picks out of a file cost what they are, not a block each.
type Reader struct {
	c      *Cache
	meta   *metaCache // the opener's identity's metadata (siblings to prefetch)
	obj    object
	pinned store.Object

	mu       sync.Mutex
	next     int64 // where a sequential reader would read next
	window   int64 // current read-ahead in bytes
	ahead    int64 // read-ahead has been requested up to here
	randoms  int   // non-sequential reads so far
	whole    bool  // the whole file has been requested
	closed   bool
	read     bool // it has been read from
	runStart int64
	dropped  int64 // blocks before this one were dropped behind the run
	// starved is how often the window's bound was doubled above its
	// start (maxWindow/startShare) because the run caught up with its
	// own read-ahead (windowBound).
	starved int

	seen *run // what other Readers of the object see of this one's run (streams)
}

// Open returns a Reader pinned to obj's ETag and size. Close it when done:
// open Readers share the cache's room for read-ahead. On a cache with
// Config.Scope it has no identity, and its fetches fail: use OpenFor.
func (c *Cache) Open(bucket string, obj store.Object) *Reader {
	r, err := c.OpenFor(context.Background(), bucket, obj)
	if err != nil {
		// Only with Config.Scope; a Reader of nobody fetches nothing.
		c.data.active.Add(1)
		r := &Reader{c: c, pinned: obj, obj: object{bucket: bucket, key: obj.Key, etag: obj.ETag, size: obj.Size}, seen: &run{}}
		c.streams.add(r)
		return r
	}
	return r
}

// OpenFor is Open for the identity of ctx: the blocks the Reader fetches
// are fetched with that identity (the namespace has checked that it may
// read this version, see scope.go).
func (c *Cache) OpenFor(ctx context.Context, bucket string, obj store.Object) (*Reader, error) {
	m, err := c.metaFor(ctx)
	if err != nil {
		return nil, err
	}
	vals := detach(ctx)
	if !c.Scoped() {
		vals = nil
	}
	c.data.active.Add(1)
	r := &Reader{c: c, meta: m, pinned: obj, obj: object{bucket: bucket, key: obj.Key, etag: obj.ETag, size: obj.Size, vals: vals}, seen: &run{}}
	c.streams.add(r)
	return r, nil
}

// Close releases the Reader's share of read-ahead room.
func (r *Reader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.c.data.active.Add(-1)
		r.c.streams.remove(r)
	}
}

// Object returns the metadata of the version this Reader is pinned to.
func (r *Reader) Object() store.Object { return r.pinned }

// ReadAt reads len(p) bytes at off, fewer at the end of the object. When the
// object changed since open it returns an error wrapping store.ErrChanged
// and forgets the cached metadata so the next open sees the new version.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.obj.size || len(p) == 0 {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.obj.size)
	first, last, pend := r.start(off, end)
	if pend == nil {
		return r.exact(ctx, p[:end-off], off)
	}
	bs := r.c.cfg.BlockSize
	n := 0
	for i := first; i <= last; i++ {
		data, hold, err := r.block(ctx, i, pend[i-first])
		if err != nil {
			return n, err
		}
		blockStart := i * bs
		lo := max(off, blockStart) - blockStart
		hi := min(end, blockStart+int64(len(data))) - blockStart
		if lo >= hi {
			hold.Release()
			return n, io.ErrUnexpectedEOF
		}
		n += copy(p[n:], data[lo:hi])
		hold.Release()
	}
	if end == r.obj.size {
		return n, io.EOF
	}
	return n, nil
}

// Slice returns up to len(buf) bytes at off. When they lie in one block it
// returns a slice of the cached block without copying (blocks are never
// written while anyone holds them), and a Hold to release once the bytes
// are no longer used; otherwise it reads into buf (and the Hold holds
// nothing). io.EOF marks the end of the object, as with ReadAt.
func (r *Reader) Slice(ctx context.Context, buf []byte, off int64) ([]byte, Hold, error) {
	head, tail, hold, err := r.Span(ctx, buf, off)
	data, hold := Join(buf, head, tail, hold)
	return data, hold, err
}

// Join turns what Span returned into one slice: head when there is no
// tail, else head and tail copied into buf, and hold released.
func Join(buf, head, tail []byte, hold Hold) ([]byte, Hold) {
	if tail == nil {
		return head, hold
	}
	n := copy(buf, head)
	n += copy(buf[n:], tail)
	hold.Release()
	return buf[:n], Hold{}
}

// Span is Slice for a reply that can be sent in two pieces: bytes that
// cross from one block into the next come back as head (in the first)
// and tail (in the second), both without copying, and the Hold keeps
// both blocks. A kernel whose read-ahead is not aligned to blocks sends
// every 1 MiB READ across two of them: copying those into buf was a
// fifth of the daemon's CPU. tail is nil when there is one piece (in a
// block, or read into buf: bytes over more than two blocks, or fetched
// exactly).
func (r *Reader) Span(ctx context.Context, buf []byte, off int64) (head, tail []byte, hold Hold, err error) {
	bs := r.c.cfg.BlockSize
	end := min(off+int64(len(buf)), r.obj.size)
	if off >= end || (end-1)/bs-off/bs > 1 {
		n, err := r.ReadAt(ctx, buf, off)
		return buf[:n], nil, Hold{}, err
	}
	first, last, pend := r.start(off, end)
	if pend == nil {
		n, err := r.exact(ctx, buf[:end-off], off)
		return buf[:n], nil, Hold{}, err
	}
	var parts [2][]byte
	for i := first; i <= last; i++ {
		data, h, err := r.block(ctx, i, pend[i-first])
		if err != nil {
			hold.Release()
			return nil, nil, Hold{}, err
		}
		hold = hold.and(h)
		blockStart := i * bs
		lo, hi := max(off, blockStart)-blockStart, min(end, blockStart+bs)-blockStart
		if hi > int64(len(data)) {
			hold.Release()
			return nil, nil, Hold{}, io.ErrUnexpectedEOF
		}
		parts[i-first] = data[lo:hi]
	}
	if end == r.obj.size {
		err = io.EOF
	}
	return parts[0], parts[1], hold, err
}

// start requests the blocks of [off, end) and any read-ahead, and returns
// the first and last block and the pending fetch of each. The blocks asked
// for go out first, in runs of their own, so the first byte does not wait
// for read-ahead. pend is nil when the bytes are to be fetched exactly
// (Reader.exact) instead.
func (r *Reader) start(off, end int64) (first, last int64, pend []*pending) {
	bs := r.c.cfg.BlockSize
	first, last = off/bs, (end-1)/bs
	raFrom, raTo, earned, siblings := r.plan(off, end)
	if siblings && r.meta != nil {
		r.c.prefetchSiblings(r.meta, r.obj.vals, r.obj.bucket, r.pinned)
	}
	if !earned && !r.c.data.has(r.obj, first, last) && !r.c.data.onDisk(r.obj, first, last) {
		return first, last, nil
	}
	pend = r.c.data.request(r.obj, first, last, true)
	// Read-ahead (or the whole file) around the blocks asked for, not
	// those again: had their fetch already failed, asking for them here
	// would send a second GET.
	if raTo >= raFrom && raFrom < first {
		r.c.data.request(r.obj, raFrom, min(raTo, first-1), false)
	}
	if raFrom = max(raFrom, last+1); raTo >= raFrom {
		r.c.data.request(r.obj, raFrom, raTo, false) // skips what is in flight
	}
	if from, to := r.behind(); to >= from && r.c.streams.alone(r) {
		r.c.data.drop(r.obj, from, to)
	}
	return first, last, pend
}

// dropBehind is how many blocks a sequential reader, alone on its object,
// leaves cached behind it. The blocks before are dropped from the cache as
// it goes (the kernel's page cache has their bytes; a second reader of the
// object stops this), so that the cache does not fill with a file read
// once: the buffers of the dropped blocks are reused for the next ones at
// once, instead of the whole cache being allocated and faulted in first
// (a quarter of the daemon's CPU in a cold 1 GiB read).
const dropBehind = 16

// behind returns the blocks the sequential run has left behind by more
// than dropBehind blocks and not yet dropped (to < from when none).
func (r *Reader) behind() (from, to int64) {
	bs := r.c.cfg.BlockSize
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.window == 0 || r.whole {
		return 0, -1
	}
	from = max(r.dropped, (r.runStart+bs-1)/bs)
	to = (r.next-dropBehind*bs)/bs - 1
	if to >= from {
		r.dropped = to + 1
	}
	return from, to
}

// exact fetches p at off with one GET of those bytes, past the block
// cache (the kernel's page cache keeps them), retried as a block fetch is.
// p must end within the object. io.EOF at the end of the object, as
// ReadAt; a body that ends early is never passed on as a short read (the
// kernel would take it for the end of the file).
func (r *Reader) exact(ctx context.Context, p []byte, off int64) (int, error) {
	b := r.c.data
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	b.misses.Add(1)
	got := 0
	var err error
	for attempt := 0; got < len(p); attempt++ {
		if attempt > 0 {
			if !retryable(err) || attempt > 2 || ctx.Err() != nil {
				break
			}
			if !sleep(ctx, time.Duration(50<<attempt)*time.Millisecond) {
				break
			}
		}
		var n int
		n, err = r.exactOnce(ctx, p[got:], off+int64(got))
		got += n
		if n > 0 {
			attempt = 0 // the transfer moved: only attempts that brought nothing count
		}
		if got < len(p) && (err == nil || errors.Is(err, io.EOF)) {
			err = fmt.Errorf("%s/%s at %d: body ended early: %w", r.obj.bucket, r.obj.key, off+int64(got), io.ErrUnexpectedEOF)
		}
	}
	if got < len(p) {
		if errors.Is(err, store.ErrChanged) {
			r.c.Forget(r.obj.bucket, r.obj.key)
		}
		return got, err
	}
	if off+int64(got) == r.obj.size {
		return got, io.EOF
	}
	return got, nil
}

// exactOnce is one GET of p at off, within the mount's request slots.
func (r *Reader) exactOnce(ctx context.Context, p []byte, off int64) (int, error) {
	b := r.c.data
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-b.sem }()
	b.requests.Add(1)
	n, err := store.ReadAt(ctx, r.c.store, r.obj.bucket, r.obj.key, r.obj.etag, p, off)
	b.bytes.Add(int64(n))
	return n, err
}

// block waits for block i of the pinned version.
func (r *Reader) block(ctx context.Context, i int64, p *pending) ([]byte, Hold, error) {
	if p != nil && !p.arrived() {
		r.caughtUp()
	}
	data, hold, err := r.c.data.get(ctx, r.obj, i, p)
	if errors.Is(err, store.ErrChanged) {
		r.c.Forget(r.obj.bucket, r.obj.key)
	}
	return data, hold, err
}

// plan updates the access-pattern state for a read of [off, end) and
// returns the block range to fetch ahead (raTo < raFrom when none),
// whether the run of reads has earned whole blocks (else the bytes are
// fetched exactly), and whether this is the first read of the handle, at
// the start of the file, which is when the next files of the directory
// are worth fetching (siblings; a Parquet reader starts at the footer).
func (r *Reader) plan(off, end int64) (raFrom, raTo int64, earned, siblings bool) {
	bs := r.c.cfg.BlockSize
	r.mu.Lock()
	defer r.mu.Unlock()
	siblings = !r.read && off == 0
	r.read = true
	// The kernel sends reads of one sequential stream in parallel and
	// slightly out of order; count a read as sequential when it starts
	// near where the last one ended.
	slack := max(r.window, 2*bs)
	if off >= r.next-slack && off <= r.next+slack && (r.window > 0 || r.next > 0 || off == 0) {
		r.window = min(max(2*r.window, bs), r.windowBound())
		if nb := min(end, r.obj.size-1) / bs; r.c.data.onDisk(r.obj, nb, nb) {
			r.window = min(r.window, diskWindow(r.c.cfg))
		}
		r.next = max(r.next, end)
	} else {
		r.window, r.ahead, r.next, r.runStart, r.dropped, r.starved = 0, 0, end, off, 0, 0
		r.randoms++
		if r.randoms >= wholeFileAfter && !r.whole && r.obj.size <= r.c.cfg.DataBytes/2 {
			r.whole = true
			return 0, r.obj.blocks(bs) - 1, true, siblings
		}
	}
	// A run from the start of the file is a file being read (cat, cp,
	// R's read.csv): blocks at once. Elsewhere a run earns them after a
	// block's worth of reads; until then nothing is read ahead either.
	earned = r.whole || r.runStart == 0 || r.next-r.runStart >= bs
	r.seen.start.Store(r.runStart)
	r.seen.next.Store(r.next)
	r.seen.seq.Store(earned && r.window > 0)
	if !earned {
		return 0, -1, false, siblings
	}
	target := min(end+r.window, r.obj.size)
	// Never past the start of another reader's run ahead of this one: it
	// has read, or is reading ahead, what lies beyond (four readers of
	// quarters of one file would otherwise each fetch again the start of
	// the next quarter, read and evicted long before).
	target = r.c.streams.limit(r, end, target)
	from := max(end, r.ahead)
	// Top the window up as soon as a whole run (MaxRunBlocks, or half a
	// small window) can go out: read-ahead leaves in long GETs rather than
	// a block at a time, yet the window stays full, so as many GETs stay
	// in flight as the window holds runs (waiting until half the window was
	// consumed let that number sag to half, and throughput with it).
	need := min(int64(r.c.cfg.MaxRunBlocks)*bs, r.window/2)
	if r.window == 0 || target <= from || (target-from < need && target < r.obj.size) {
		return 0, -1, true, siblings
	}
	r.ahead = target
	return from / bs, (target - 1) / bs, true, siblings
}

// diskWindow bounds the read-ahead of a run whose next block the disk
// tier holds: its blocks come from the local disk in a millisecond, not
// from S3 in tens, so a few runs in flight keep the disk busy (it reads
// no faster with more than four readers), and every block of a wider
// window is a buffer the pool fills and faults in for nothing. A run
// that waits for its read-ahead would otherwise widen the window to
// maxWindow: a 1 GiB re-read after a remount held 290 MiB (RSS) for it,
// and 60 MiB within this bound, at the same speed and 0.06-0.26 CPU-s/GiB
// less (docs/BENCHMARKS.md, seventh session).
func diskWindow(cfg Config) int64 { return 4 * runBytes(cfg) }

// startShare is the part of maxWindow a sequential run's read-ahead starts
// bounded to: 64 MiB of the default 256 MiB.
const startShare = 4

// windowBound is how far the window may grow now. A block read ahead has
// to be held until it is read: on a host where the network outruns the
// daemon (or the reader), a 256 MiB window is 256 MiB of buffers filled
// long before they are read, a fifth of the daemon's CPU in page faults on
// a cold read, for no speed. So the window starts bounded to a quarter of
// maxWindow (but at least two runs), and the bound doubles (up to maxWindow) each time the run,
// its window already full, catches up with its own read-ahead: waits for a
// block still in flight (caughtUp), which is when the network is the
// limit and more GETs in flight make it faster.
func (r *Reader) windowBound() int64 {
	m := r.maxWindow()
	return min(m, max(m/startShare<<r.starved, 2*int64(r.c.cfg.MaxRunBlocks)*r.c.cfg.BlockSize))
}

// caughtUp notes that a read waits for a block still being fetched. Only
// once the window is at its bound and the run has gone on for twice that
// (the first GETs of a run are always waited for) does it raise the bound.
func (r *Reader) caughtUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.windowBound()
	if r.window > 0 && r.window >= b && b < r.maxWindow() && r.next-r.runStart >= 2*b {
		r.starved++
	}
}

// maxWindow shares the cache between the open readers: read-ahead that
// the cache cannot hold until it is read would only be fetched twice. A
// block read ahead by w is read after the reader has read w more; with n
// readers, n*w has been read and n*w more read ahead meanwhile, all of
// which passed through the cache: w is kept well under size/2n.
func (r *Reader) maxWindow() int64 {
	active := max(r.c.data.active.Load(), 1)
	share := r.c.cfg.DataBytes / 2
	if active > 1 {
		share = r.c.cfg.DataBytes / (3 * active)
	}
	w := min(r.c.cfg.MaxReadAhead, share)
	return max(w, r.c.cfg.BlockSize)
}
