package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store/faultstore"
)

// Four readers of the quarters of one object, in parallel, through a cache
// of half of it: the read-ahead of each stops where the next reader's run
// begins, instead of fetching again the start of the next quarter, read
// and evicted long before, nor when the reader itself goes a little past
// the end of its quarter.
func TestQuarterReadersFetchOnce(t *testing.T) {
	const blocks, readers = 128, 4
	size := blocks * testBlock
	f, data, o := newDataFixture(t, Config{DataBytes: blocks / 2 * testBlock, MaxReadAhead: 16 * testBlock}, size)
	part := size / readers
	var read atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(start int) {
			defer wg.Done()
			r := f.c.Open("b", o)
			defer r.Close()
			p := make([]byte, testBlock/2)
			// Two blocks past the quarter, as the kernel's read-ahead
			// goes past the end of what the program reads.
			for off := start; off < min(start+part+2*testBlock, size); off += len(p) {
				n, err := r.ReadAt(context.Background(), p, int64(off))
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(p[:n], data[off:off+n]) {
					t.Errorf("bytes at %d differ", off)
					return
				}
				read.Add(int64(n))
			}
		}(i * part)
	}
	wg.Wait()
	waitFetches(f)
	if got, want := f.c.Stats().BytesRead, read.Load(); float64(got) > 1.05*float64(want) {
		t.Errorf("fetched %d bytes to read %d (%.0f%% more); want at most 5%% more", got, want, 100*(float64(got)/float64(want)-1))
	}
}

// The columnar pattern of Parquet readers (arrow, duckdb): in each file,
// the footer at the end, then two column chunks elsewhere; files of a
// partitioned data set opened in listing order, several at a time. What
// is fetched stays within twice what is read: no whole blocks around a
// footer, no read-ahead, no next files fetched on open.
func TestColumnarReadsFetchExactly(t *testing.T) {
	const files, fileBlocks = 24, 16
	fileSize := fileBlocks * testBlock
	keys := map[string]string{}
	for i := 0; i < files; i++ {
		keys[fmt.Sprintf("ds/part=%d/f%02d.parquet", i/8, i)] = string(randomBytes(fileSize, int64(i)))
	}
	f := newFixture(t, Config{BlockSize: testBlock}, keys)
	ctx := context.Background()
	for d := 0; d < files/8; d++ {
		readAll(t, f.c, "b", fmt.Sprintf("ds/part=%d/", d)) // the reader lists the data set first
	}
	footer, chunk := testBlock/16, testBlock/2
	var read int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				key := fmt.Sprintf("ds/part=%d/f%02d.parquet", i/8, i)
				o, err := f.c.statFile(ctx, "b", key)
				if err != nil {
					t.Error(err)
					return
				}
				r := f.c.Open("b", o)
				for _, rg := range [][2]int{{fileSize - footer, footer}, {3*testBlock + 100, chunk}, {11*testBlock - 7, chunk}} {
					got, hold, err := r.Slice(ctx, make([]byte, rg[1]), int64(rg[0]))
					if err != nil && err != io.EOF {
						t.Error(err)
					} else if !bytes.Equal(got, []byte(keys[key][rg[0]:rg[0]+rg[1]])) {
						t.Errorf("%s at %d: bytes differ", key, rg[0])
					}
					hold.Release()
					mu.Lock()
					read += int64(len(got))
					mu.Unlock()
				}
				r.Close()
			}
		}()
	}
	for i := 0; i < files; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	waitFetches(f)
	if got := f.c.Stats().BytesRead; got > 2*read {
		t.Errorf("fetched %d bytes to read %d; want at most twice", got, read)
	}
}

// A file read from its start is fetched in whole blocks with read-ahead
// at once; a run that starts elsewhere earns them after a block, fetched
// exactly until then.
func TestRunsEarnBlocks(t *testing.T) {
	size := 64 * testBlock
	for _, start := range []int{0, 10*testBlock + 3} {
		t.Run(fmt.Sprint("from ", start), func(t *testing.T) {
			f, data, o := newDataFixture(t, Config{}, size)
			r := f.c.Open("b", o)
			defer r.Close()
			p := make([]byte, testBlock/2)
			reads := 0
			for off := start; off < size; off += len(p) {
				n, err := r.ReadAt(context.Background(), p, int64(off))
				if err != nil && err != io.EOF {
					t.Fatal(err)
				}
				if !bytes.Equal(p[:n], data[off:off+n]) {
					t.Fatalf("bytes at %d differ", off)
				}
				reads++
			}
			waitFetches(f)
			if got, want := f.c.Stats().BytesRead, int64(size-start); got > want+testBlock {
				t.Errorf("fetched %d bytes to read %d", got, want)
			}
			if gets := f.fault.Count(faultstore.OpReadAt); gets > int64(reads/4) {
				t.Errorf("%d GETs for %d reads: no read-ahead", gets, reads)
			}
		})
	}
}

// waitFetches waits for read-ahead still in flight.
func waitFetches(f *fixture) {
	for {
		f.c.data.mu.Lock()
		n := len(f.c.data.inflight)
		f.c.data.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// A reader alone on its object drops the blocks it has left behind, so a
// file read once does not fill the cache (nor allocate it); with a second
// reader of the object open, the blocks stay for it.
func TestDropBehind(t *testing.T) {
	const blocks = 256
	for _, second := range []bool{false, true} {
		t.Run(fmt.Sprint("second reader ", second), func(t *testing.T) {
			f, data, o := newDataFixture(t, Config{DataBytes: blocks / 2 * testBlock, MaxReadAhead: 8 * testBlock}, blocks*testBlock)
			r := f.c.Open("b", o)
			defer r.Close()
			if second {
				defer f.c.Open("b", o).Close()
			}
			sliceAll(t, r, data)
			waitFetches(f)
			cached := f.c.Stats().CachedBytes / testBlock
			made := f.c.data.pool.allocated.Load()
			if second {
				if cached < blocks/4 {
					t.Errorf("%d blocks cached with a second reader open; want the cache used", cached)
				}
				return
			}
			// behind + read-ahead window + a run in flight
			if limit := int64(dropBehind + 8 + 8); cached > limit || made > limit+8 {
				t.Errorf("%d blocks cached and %d buffers made after reading %d blocks alone; want about %d", cached, made, blocks, limit)
			}
		})
	}
}

// A read fetched exactly whose body ends early, cut or just closed, is
// fetched again from where it stopped: never passed on short (the kernel
// would take a short read for the end of the file).
func TestExactReadResumes(t *testing.T) {
	for _, clean := range []bool{false, true} {
		t.Run(fmt.Sprint("clean end ", clean), func(t *testing.T) {
			f, data, o := newDataFixture(t, Config{}, 8*testBlock)
			bs := &breakingStore{ObjectStore: f.fault, after: 1000, clean: clean}
			bs.breaks.Store(1)
			c := New(bs, Config{BlockSize: testBlock})
			r := c.Open("b", o)
			defer r.Close()
			off := 5*testBlock + 7
			got, hold, err := r.Slice(context.Background(), make([]byte, testBlock/2), int64(off))
			defer hold.Release()
			if err != nil || !bytes.Equal(got, data[off:off+testBlock/2]) {
				t.Fatalf("Slice = %d bytes, %v; want %d right bytes", len(got), err, testBlock/2)
			}
			bs.mu.Lock()
			defer bs.mu.Unlock()
			if len(bs.starts) != 2 || bs.starts[1] != int64(off+1000) {
				t.Errorf("GETs started at %v, want [%d %d]", bs.starts, off, off+1000)
			}
		})
	}
}
