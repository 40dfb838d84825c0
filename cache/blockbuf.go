package cache

import (
	"sync"
	"sync/atomic"
)

// A cold sequential read passes every byte through a fresh block buffer:
// allocated, faulted in page by page (a quarter of a million minor faults
// per GiB), zeroed, filled from the socket, and dropped for the garbage
// collector when the block is evicted. Block buffers are recycled instead:
// an evicted block's buffer is reused by the next fetch, already mapped.
//
// Replies to the kernel point into cached blocks without copying (Slice),
// and the kernel copies the bytes only after the read handler has
// returned. So a block is reference counted: the cache holds one
// reference while the block is cached, every reply (Hold) one more; the
// buffer goes back to the pool when the last one is released. A reference
// that is never released (a reply the kernel never took) only means that
// buffer is left to the garbage collector instead of being reused.

// block is the bytes of one cached block and its reference count.
type block struct {
	data []byte
	refs atomic.Int32
}

// tryRetain takes a reference unless the block was already released by
// everyone (its buffer may then be in use for another block).
func (b *block) tryRetain() bool {
	for {
		n := b.refs.Load()
		if n <= 0 {
			return false
		}
		if b.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one returns the buffer to p.
func (b *block) release(p *bufPool) {
	switch n := b.refs.Add(-1); {
	case n == 0:
		p.put(b.data)
	case n < 0:
		panic("cache: block released more often than retained")
	}
}

// Hold keeps the bytes a read returned (in one block, or two: Span) from
// being reused for another block until Release. The zero Hold holds
// nothing. Release exactly once.
type Hold struct {
	b, next *block
	pool    *bufPool
}

// Release lets the blocks' buffers be reused once no one else holds them.
func (h Hold) Release() {
	if h.b != nil {
		h.b.release(h.pool)
	}
	if h.next != nil {
		h.next.release(h.pool)
	}
}

// and returns h holding the block of o as well (o holds one block).
func (h Hold) and(o Hold) Hold {
	if h.b == nil {
		return o
	}
	h.next = o.b
	return h
}

// bufPool hands out block buffers and takes them back. Released buffers
// go on the free list and a buffer is allocated only when the list is
// empty, so the pool's memory is the most buffers ever in use at once (the
// cached blocks, the blocks being received and those still held by
// replies), which the cache and in-flight bounds already cover.
type bufPool struct {
	size int // every buffer's capacity: the block size

	mu   sync.Mutex
	free [][]byte

	allocated atomic.Int64 // buffers made, for tests and the curious
}

func newBufPool(size int64) *bufPool {
	return &bufPool{size: int(size)}
}

// get returns a buffer of n bytes (n at most the block size) whose
// content is undefined: the caller overwrites all n.
func (p *bufPool) get(n int64) []byte {
	p.mu.Lock()
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free[k-1] = nil
		p.free = p.free[:k-1]
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	p.allocated.Add(1)
	return make([]byte, n, p.size)
}

// put takes back a buffer no one refers to any more.
func (p *bufPool) put(b []byte) {
	if cap(b) != p.size {
		return
	}
	p.mu.Lock()
	p.free = append(p.free, b[:0])
	p.mu.Unlock()
}

// newBlock wraps freshly filled data with the cache's own reference.
func newBlock(data []byte) *block {
	b := &block{data: data}
	b.refs.Store(1)
	return b
}
