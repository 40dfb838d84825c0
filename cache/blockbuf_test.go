package cache

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"sync"
	"testing"
)

// A sequential read of an object many times the cache reuses the buffers
// of evicted blocks: buffers made stay near what the cache holds plus the
// blocks in flight, instead of one per block read.
func TestBlockBuffersRecycled(t *testing.T) {
	const cached = 8
	size := 200 * testBlock
	f, data, o := newDataFixture(t, Config{DataBytes: cached * testBlock, MaxReadAhead: 4 * testBlock}, size)
	r := f.c.Open("b", o)
	defer r.Close()
	sliceAll(t, r, data)
	made := f.c.data.pool.allocated.Load()
	// cached blocks + read-ahead in flight + the block being read + slack
	if limit := int64(cached + 4 + 4 + 4); made > limit {
		t.Errorf("made %d buffers to read %d blocks through a cache of %d; want at most %d", made, size/testBlock, cached, limit)
	}
}

// A block evicted while a reply still points into it keeps its bytes until
// the reply is released; only then is its buffer reused.
func TestHeldBlockNotReused(t *testing.T) {
	size := 64 * testBlock
	f, data, o := newDataFixture(t, Config{DataBytes: 2 * testBlock, MaxReadAhead: testBlock}, size)
	r := f.c.Open("b", o)
	defer r.Close()
	ctx := context.Background()
	held, hold, err := r.Slice(ctx, make([]byte, 100), 5)
	if err != nil {
		t.Fatal(err)
	}
	before := f.c.data.pool.allocated.Load()
	// Push block 0 out of the cache many times over.
	p := make([]byte, testBlock)
	for off := testBlock; off < size; off += testBlock {
		if _, err := r.ReadAt(ctx, p, int64(off)); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if f.c.data.lru.Contains(blockKey{bucket: "b", key: o.Key, etag: o.ETag, idx: 0}) {
		t.Fatal("block 0 still cached: the test did not evict it")
	}
	if !bytes.Equal(held, data[5:105]) {
		t.Fatal("the bytes of a held block changed after its eviction")
	}
	hold.Release()
	// Its buffer is free now: reading the rest again needs no new one
	// beyond what the first pass made.
	for off := 0; off < size; off += testBlock {
		if _, err := r.ReadAt(ctx, p, int64(off)); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if after := f.c.data.pool.allocated.Load(); after > before+4 {
		t.Errorf("buffers made grew from %d to %d on a second pass", before, after)
	}
}

// Many readers slice blocks of a cache far smaller than the object, hold
// them for a while, check them and release them, while the cache evicts
// and refills under them. Run with -race: a buffer reused while held is
// both a data race and wrong bytes.
func TestHeldBlocksUnderChurn(t *testing.T) {
	size := 48*testBlock + 999
	f, data, o := newDataFixture(t, Config{DataBytes: 3 * testBlock, MaxReadAhead: 2 * testBlock}, size)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := f.c.Open("b", o)
			defer r.Close()
			rnd := rand.New(rand.NewSource(seed))
			var holds []Hold
			var views [][]byte
			var offs []int
			for i := 0; i < 60; i++ {
				off := rnd.Intn(size)
				got, hold, err := r.Slice(context.Background(), make([]byte, rnd.Intn(testBlock)+1), int64(off))
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				holds, views, offs = append(holds, hold), append(views, got), append(offs, off)
				if len(holds) == 4 || i == 59 {
					for j := range holds {
						if !bytes.Equal(views[j], data[offs[j]:offs[j]+len(views[j])]) {
							t.Errorf("held bytes at %d changed before release", offs[j])
						}
						holds[j].Release()
					}
					holds, views, offs = holds[:0], views[:0], offs[:0]
				}
			}
		}(int64(g))
	}
	wg.Wait()
}

// sliceAll reads data through r with Slice, a block at a time, checking
// the bytes and releasing each.
func sliceAll(t *testing.T, r *Reader, data []byte) {
	t.Helper()
	p := make([]byte, testBlock)
	for off := 0; off < len(data); off += len(p) {
		got, hold, err := r.Slice(context.Background(), p, int64(off))
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[off:off+len(got)]) {
			t.Fatalf("bytes at %d differ", off)
		}
		hold.Release()
	}
}

func TestBlockRefCounts(t *testing.T) {
	p := newBufPool(16)
	b := newBlock(p.get(10))
	if !b.tryRetain() {
		t.Fatal("a cached block could not be retained")
	}
	b.release(p) // the reply
	if len(p.free) != 0 {
		t.Fatal("buffer freed while the cache still holds it")
	}
	b.release(p) // the cache's own
	if len(p.free) != 1 {
		t.Fatal("buffer not freed after the last release")
	}
	if b.tryRetain() {
		t.Fatal("a released block was retained again")
	}
	defer func() {
		if recover() == nil {
			t.Error("releasing once too often did not panic")
		}
	}()
	b.release(p)
}
