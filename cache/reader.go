package cache

import (
	"context"
	"errors"
	"io"
	"sync"

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
type Reader struct {
	c      *Cache
	obj    object
	pinned store.Object

	mu      sync.Mutex
	next    int64 // where a sequential reader would read next
	window  int64 // current read-ahead in bytes
	ahead   int64 // read-ahead has been requested up to here
	randoms int   // non-sequential reads so far
	whole   bool  // the whole file has been requested
	closed  bool
}

// Open returns a Reader pinned to obj's ETag and size. Close it when done:
// open Readers share the cache's room for read-ahead. On a cache with
// Config.Scope it has no identity, and its fetches fail: use OpenFor.
func (c *Cache) Open(bucket string, obj store.Object) *Reader {
	r, err := c.OpenFor(context.Background(), bucket, obj)
	if err != nil {
		// Only with Config.Scope; a Reader of nobody fetches nothing.
		c.data.active.Add(1)
		return &Reader{c: c, pinned: obj, obj: object{bucket: bucket, key: obj.Key, etag: obj.ETag, size: obj.Size}}
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
	c.prefetchSiblings(m, vals, bucket, obj)
	return &Reader{c: c, pinned: obj, obj: object{bucket: bucket, key: obj.Key, etag: obj.ETag, size: obj.Size, vals: vals}}, nil
}

// Close releases the Reader's share of read-ahead room.
func (r *Reader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.c.data.active.Add(-1)
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
	bs := r.c.cfg.BlockSize
	n := 0
	for i := first; i <= last; i++ {
		data, err := r.block(ctx, i, pend[i-first])
		if err != nil {
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
	if end == r.obj.size {
		return n, io.EOF
	}
	return n, nil
}

// Slice returns up to len(buf) bytes at off. When they lie in one block it
// returns a slice of the cached block without copying (blocks are never
// written once cached); otherwise it reads into buf. io.EOF marks the end
// of the object, as with ReadAt.
func (r *Reader) Slice(ctx context.Context, buf []byte, off int64) ([]byte, error) {
	bs := r.c.cfg.BlockSize
	end := min(off+int64(len(buf)), r.obj.size)
	if off >= end || off/bs != (end-1)/bs {
		n, err := r.ReadAt(ctx, buf, off)
		return buf[:n], err
	}
	first, _, pend := r.start(off, end)
	data, err := r.block(ctx, first, pend[0])
	if err != nil {
		return nil, err
	}
	lo, hi := off-first*bs, end-first*bs
	if hi > int64(len(data)) {
		return nil, io.ErrUnexpectedEOF
	}
	if end == r.obj.size {
		return data[lo:hi], io.EOF
	}
	return data[lo:hi], nil
}

// start requests the blocks of [off, end) and any read-ahead, and returns
// the first and last block and the pending fetch of each. The blocks asked
// for go out first, in runs of their own, so the first byte does not wait
// for read-ahead.
func (r *Reader) start(off, end int64) (first, last int64, pend []*pending) {
	bs := r.c.cfg.BlockSize
	first, last = off/bs, (end-1)/bs
	pend = r.c.data.request(r.obj, first, last, true)
	if raFrom, raTo := r.plan(off, end); raTo >= raFrom {
		r.c.data.request(r.obj, raFrom, raTo, false) // skips what is in flight
	}
	return first, last, pend
}

// block waits for block i of the pinned version.
func (r *Reader) block(ctx context.Context, i int64, p *pending) ([]byte, error) {
	data, err := r.c.data.get(ctx, r.obj, i, p)
	if errors.Is(err, store.ErrChanged) {
		r.c.Forget(r.obj.bucket, r.obj.key)
	}
	return data, err
}

// plan updates the access-pattern state for a read of [off, end) and
// returns the block range to fetch ahead (raTo < raFrom when none).
func (r *Reader) plan(off, end int64) (raFrom, raTo int64) {
	bs := r.c.cfg.BlockSize
	r.mu.Lock()
	defer r.mu.Unlock()
	// The kernel sends reads of one sequential stream in parallel and
	// slightly out of order; count a read as sequential when it starts
	// near where the last one ended.
	slack := max(r.window, 2*bs)
	if off >= r.next-slack && off <= r.next+slack {
		r.window = min(max(2*r.window, bs), r.maxWindow())
		r.next = max(r.next, end)
	} else {
		r.window, r.ahead, r.next = 0, 0, end
		r.randoms++
		if r.randoms >= wholeFileAfter && !r.whole && r.obj.size <= r.c.cfg.DataBytes/2 {
			r.whole = true
			return 0, r.obj.blocks(bs) - 1
		}
	}
	target := min(end+r.window, r.obj.size)
	from := max(end, r.ahead)
	// Top the window up as soon as a whole run (MaxRunBlocks, or half a
	// small window) can go out: read-ahead leaves in long GETs rather than
	// a block at a time, yet the window stays full, so as many GETs stay
	// in flight as the window holds runs (waiting until half the window was
	// consumed let that number sag to half, and throughput with it).
	need := min(int64(r.c.cfg.MaxRunBlocks)*bs, r.window/2)
	if r.window == 0 || target <= from || (target-from < need && target < r.obj.size) {
		return 0, -1
	}
	r.ahead = target
	return from / bs, (target - 1) / bs
}

// maxWindow shares the cache between the open readers: read-ahead that
// the cache cannot hold until it is read would only be fetched twice.
func (r *Reader) maxWindow() int64 {
	active := max(r.c.data.active.Load(), 1)
	w := min(r.c.cfg.MaxReadAhead, r.c.cfg.DataBytes/(2*active))
	return max(w, r.c.cfg.BlockSize)
}
