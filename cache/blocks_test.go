package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
)

const testBlock = 64 << 10

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func newDataFixture(t *testing.T, cfg Config, size int) (*fixture, []byte, store.Object) {
	t.Helper()
	data := randomBytes(size, int64(size))
	if cfg.BlockSize == 0 {
		cfg.BlockSize = testBlock
	}
	f := newFixture(t, cfg, map[string]string{"obj": string(data)})
	o, err := f.c.statFile(context.Background(), "b", "obj")
	if err != nil {
		t.Fatal(err)
	}
	return f, data, o
}

func TestReadAtRanges(t *testing.T) {
	size := 10*testBlock + 123
	f, data, o := newDataFixture(t, Config{}, size)
	r := f.c.Open("b", o)
	tests := []struct {
		name    string
		off, n  int
		wantN   int
		wantEOF bool
	}{
		{"first byte", 0, 1, 1, false},
		{"inside a block", 100, 1000, 1000, false},
		{"across blocks", testBlock - 10, 3 * testBlock, 3 * testBlock, false},
		{"exact block", 2 * testBlock, testBlock, testBlock, false},
		{"tail", size - 50, 50, 50, true},
		{"past the end is short", size - 50, 500, 50, true},
		{"at the end", size, 10, 0, true},
		{"beyond the end", size + 10, 10, 0, true},
	}
	methods := map[string]func(p []byte, off int64) ([]byte, error){
		"ReadAt": func(p []byte, off int64) ([]byte, error) {
			n, err := r.ReadAt(context.Background(), p, off)
			return p[:n], err
		},
		"Slice": func(p []byte, off int64) ([]byte, error) {
			s, hold, err := r.Slice(context.Background(), p, off)
			got := append([]byte(nil), s...)
			hold.Release()
			return got, err
		},
	}
	for mname, read := range methods {
		for _, tt := range tests {
			t.Run(mname+"/"+tt.name, func(t *testing.T) {
				got, err := read(make([]byte, tt.n), int64(tt.off))
				if len(got) != tt.wantN || (err == io.EOF) != tt.wantEOF || (err != nil && err != io.EOF) {
					t.Fatalf("read = %d bytes, %v; want %d, eof %v", len(got), err, tt.wantN, tt.wantEOF)
				}
				if !bytes.Equal(got, data[min(tt.off, size):min(tt.off, size)+len(got)]) {
					t.Fatal("bytes differ from the object")
				}
			})
		}
	}
}

// Many random reads, concurrently, always return the object's bytes.
func TestReadAtRandomConcurrent(t *testing.T) {
	size := 40*testBlock + 7
	f, data, o := newDataFixture(t, Config{DataBytes: 8 * testBlock}, size)
	r := f.c.Open("b", o)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(seed))
			for i := 0; i < 50; i++ {
				off := rnd.Intn(size)
				p := make([]byte, rnd.Intn(3*testBlock)+1)
				n, err := r.ReadAt(context.Background(), p, int64(off))
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(p[:n], data[off:off+n]) {
					t.Errorf("read at %d: bytes differ", off)
					return
				}
			}
		}(int64(g))
	}
	wg.Wait()
	if l := f.c.data.lru.Len(); l > 8 {
		t.Errorf("cache holds %d blocks, bound is 8", l)
	}
}

// Readers of the same block at the same time share its GET (reads from
// the start of the file: a first read elsewhere is fetched exactly, see
// TestColumnarReadsFetchExactly).
func TestConcurrentReadersShareOneGET(t *testing.T) {
	f, data, o := newDataFixture(t, Config{}, 4*testBlock)
	gate := make(chan struct{})
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpReadAt {
			<-gate
		}
		return nil
	})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.c.Open("b", o) // separate handles, same version
			p := make([]byte, 100)
			if _, err := r.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data[:100]) {
				t.Errorf("read: %v", err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	// The block, and the next one read ahead: once for all sixteen.
	if n := f.fault.Count(faultstore.OpReadAt); n != 2 {
		t.Errorf("GETs = %d, want 2", n)
	}
}

// A sequential reader gets read-ahead: most blocks are already cached or
// in flight when asked for, and GETs cover several blocks each.
func TestSequentialReadAhead(t *testing.T) {
	size := 64 * testBlock
	f, data, o := newDataFixture(t, Config{MaxReadAhead: 16 * testBlock, MaxRunBlocks: 4}, size)
	r := f.c.Open("b", o)
	got := make([]byte, 0, size)
	p := make([]byte, 32<<10) // smaller than a block, as the kernel sends
	for off := 0; off < size; {
		n, err := r.ReadAt(context.Background(), p, int64(off))
		got = append(got, p[:n]...)
		off += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sequential read differs from the object")
	}
	st := f.c.Stats()
	if st.BlockMisses > 3 {
		t.Errorf("reader waited on %d block misses; read-ahead should have fetched nearly all blocks first", st.BlockMisses)
	}
	// 16 full runs plus a few short ones while the window first doubles.
	if gets := f.fault.Count(faultstore.OpReadAt); gets > 64/4+6 {
		t.Errorf("%d GETs for 64 blocks with runs of 4", gets)
	}
}

// A read at the end of a file (a Parquet footer) fetches what it needs and
// no read-ahead of the rest.
func TestRandomReadNoReadAhead(t *testing.T) {
	size := 64 * testBlock
	f, _, o := newDataFixture(t, Config{}, size)
	r := f.c.Open("b", o)
	p := make([]byte, 8)
	if _, err := r.ReadAt(context.Background(), p, int64(size-8)); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(context.Background(), make([]byte, 1000), int64(size/2)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if st := f.c.Stats(); st.BytesRead > 2*testBlock {
		t.Errorf("footer and one middle read fetched %d bytes, want at most two blocks", st.BytesRead)
	}
}

// A read pinned to an ETag fails with ErrChanged once the object is
// replaced, and the cached metadata is forgotten so a new open sees it.
func TestETagPinning(t *testing.T) {
	f, data, o := newDataFixture(t, Config{}, 4*testBlock)
	ctx := context.Background()
	r := f.c.Open("b", o)
	p := make([]byte, 10)
	if _, err := r.ReadAt(ctx, p, 0); err != nil || !bytes.Equal(p, data[:10]) {
		t.Fatalf("first read: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // let read-ahead settle
	newData := bytes.Repeat([]byte("n"), 5*testBlock)
	if _, err := f.mem.Put(ctx, "b", "obj", bytes.NewReader(newData), int64(len(newData))); err != nil {
		t.Fatal(err)
	}
	// Block 0 is cached for the old ETag: still the old bytes, never a mix.
	if _, err := r.ReadAt(ctx, p, 0); err != nil || !bytes.Equal(p, data[:10]) {
		t.Fatalf("cached read after overwrite = %q, %v; want the old bytes", p, err)
	}
	// An uncached block of the old version cannot be fetched any more.
	f.c.data.lru.Purge()
	if _, err := r.ReadAt(ctx, p, 3*testBlock); !errors.Is(err, store.ErrChanged) {
		t.Fatalf("uncached read after overwrite err = %v, want ErrChanged", err)
	}
	o2, err := f.c.statFile(ctx, "b", "obj")
	if err != nil || o2.ETag == o.ETag || o2.Size != int64(len(newData)) {
		t.Fatalf("StatFile after change = %+v, %v; want the new version", o2, err)
	}
	r2 := f.c.Open("b", o2)
	if _, err := r2.ReadAt(ctx, p, 0); err != nil || !bytes.Equal(p, newData[:10]) {
		t.Fatalf("read of the new version = %q, %v", p, err)
	}
}

// A transient failure is retried; an answer such as access denied is not.
func TestFetchRetries(t *testing.T) {
	tests := []struct {
		name     string
		inject   error
		failures int32
		wantErr  error
		wantGETs int64
	}{
		{"transient error retried", errors.New("connection reset by peer"), 2, nil, 3},
		{"access denied not retried", store.ErrAccessDenied, 1, store.ErrAccessDenied, 1},
		// The SDK already retried it with back-off: one GET here is up
		// to its attempts there, not three times that.
		{"throttled not retried again", fmt.Errorf("get: %w", store.ErrThrottled), 100, store.ErrThrottled, 1},
		{"persistent error gives up", errors.New("boom"), 100, errors.New("boom"), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, data, o := newDataFixture(t, Config{}, testBlock)
			var left atomic.Int32
			left.Store(tt.failures)
			f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
				if op == faultstore.OpReadAt && left.Add(-1) >= 0 {
					return tt.inject
				}
				return nil
			})
			p := make([]byte, 10)
			_, err := f.c.Open("b", o).ReadAt(context.Background(), p, 0)
			if (err == nil) != (tt.wantErr == nil) || (errors.Is(tt.wantErr, store.ErrAccessDenied) && !errors.Is(err, store.ErrAccessDenied)) ||
				(errors.Is(tt.wantErr, store.ErrThrottled) && !errors.Is(err, store.ErrThrottled)) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(p, data[:10]) {
				t.Fatal("bytes differ")
			}
			if n := f.fault.Count(faultstore.OpReadAt); n != tt.wantGETs {
				t.Errorf("GETs = %d, want %d", n, tt.wantGETs)
			}
		})
	}
}

// A reader whose context is cancelled stops waiting; the fetch goes on
// and serves the next reader.
func TestCancelledReaderDoesNotPoisonBlock(t *testing.T) {
	f, data, o := newDataFixture(t, Config{}, testBlock)
	gate := make(chan struct{})
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpReadAt {
			<-gate
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := f.c.Open("b", o).ReadAt(ctx, make([]byte, 10), 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read err = %v", err)
	}
	close(gate)
	p := make([]byte, 10)
	if _, err := f.c.Open("b", o).ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data[:10]) {
		t.Fatalf("next read = %v", err)
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != 1 {
		t.Errorf("GETs = %d, want 1", n)
	}
}

// Repeated random reads of a file that fits in the cache fetch it whole;
// after that every read is a hit.
func TestRandomReadsFetchSmallFileWhole(t *testing.T) {
	size := 32 * testBlock
	f, data, o := newDataFixture(t, Config{DataBytes: 256 * testBlock}, size)
	r := f.c.Open("b", o)
	defer r.Close()
	rnd := rand.New(rand.NewSource(1))
	p := make([]byte, 1000)
	for i := 0; i < wholeFileAfter; i++ {
		off := rnd.Intn(size - len(p))
		if _, err := r.ReadAt(context.Background(), p, int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.c.data.lru.Len() < 32 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l := f.c.data.lru.Len(); l != 32 {
		t.Fatalf("cached blocks = %d, want the whole file (32)", l)
	}
	gets := f.fault.Count(faultstore.OpReadAt)
	for i := 0; i < 50; i++ {
		off := rnd.Intn(size - len(p))
		if _, err := r.ReadAt(context.Background(), p, int64(off)); err != nil || !bytes.Equal(p, data[off:off+len(p)]) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != gets {
		t.Errorf("%d more GETs after the file was cached whole", n-gets)
	}
}

// A file too big for half of the cache is never fetched whole.
func TestRandomReadsLargeFileExact(t *testing.T) {
	size := 64 * testBlock
	f, _, o := newDataFixture(t, Config{DataBytes: 96 * testBlock}, size)
	r := f.c.Open("b", o)
	defer r.Close()
	for i := 0; i < 10; i++ {
		off := int64((i*37%60 + 3) * testBlock) // away from the start, where a reader may begin sequentially
		if _, err := r.ReadAt(context.Background(), make([]byte, 100), off); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if st := f.c.Stats(); st.BytesRead > 10*testBlock {
		t.Errorf("10 random reads fetched %d bytes, want at most 10 blocks", st.BytesRead)
	}
}

// Open readers share the room for read-ahead.
func TestReadAheadWindowShared(t *testing.T) {
	f, _, o := newDataFixture(t, Config{DataBytes: 64 * testBlock, MaxReadAhead: 64 * testBlock}, testBlock)
	readers := make([]*Reader, 4)
	for i := range readers {
		readers[i] = f.c.Open("b", o)
	}
	if w := readers[0].maxWindow(); w != 64*testBlock/12 {
		t.Errorf("window with 4 readers = %d bytes, want %d (cache/3/4)", w, 64*testBlock/12)
	}
	for _, r := range readers[1:] {
		r.Close()
		r.Close() // twice is harmless
	}
	if w := readers[0].maxWindow(); w != 32*testBlock {
		t.Errorf("window with 1 reader = %d blocks, want 32 (cache/2)", w/testBlock)
	}
}

// The in-flight budget never deadlocks, even when it holds a single run.
func TestTinyBudget(t *testing.T) {
	size := 40 * testBlock
	f, data, o := newDataFixture(t, Config{MaxInflightBytes: 1, MaxRunBlocks: 2, MaxReadAhead: 8 * testBlock}, size)
	r := f.c.Open("b", o)
	defer r.Close()
	got, err := io.ReadAll(io.NewSectionReader(readerAt{r}, 0, int64(size)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read all: %v", err)
	}
}

type readerAt struct{ r *Reader }

func (a readerAt) ReadAt(p []byte, off int64) (int, error) {
	return a.r.ReadAt(context.Background(), p, off)
}

// breakingStore cuts the first `breaks` GET bodies after `after` bytes, as a
// reset connection would.
type breakingStore struct {
	store.ObjectStore
	after  int64
	breaks atomic.Int32
	clean  bool // the body just ends, as a proxy closing the connection
	starts []int64
	mu     sync.Mutex
}

func (s *breakingStore) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	s.starts = append(s.starts, off)
	s.mu.Unlock()
	rc, err := s.ObjectStore.ReadRange(ctx, bucket, key, etag, off, n)
	if err != nil || s.breaks.Add(-1) < 0 {
		return rc, err
	}
	if s.clean {
		return io.NopCloser(io.LimitReader(rc, s.after)), nil
	}
	return io.NopCloser(io.MultiReader(io.LimitReader(rc, s.after), errReader{})), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// A GET body that breaks part-way: the blocks that arrived are kept, the
// rest is fetched again from the first missing block, and the bytes are
// right.
func TestBrokenBodyResumes(t *testing.T) {
	f, data, o := newDataFixture(t, Config{MaxRunBlocks: 8}, 8*testBlock)
	bs := &breakingStore{ObjectStore: f.fault, after: 3*testBlock + 100}
	bs.breaks.Store(1)
	c := New(bs, Config{BlockSize: testBlock, MaxRunBlocks: 8})
	// Ask for all 8 blocks as one run, as read-ahead would.
	c.data.request(object{bucket: "b", key: o.Key, etag: o.ETag, size: o.Size}, 0, 7, false)
	r := c.Open("b", o)
	defer r.Close()
	got := make([]byte, len(data))
	if n, err := r.ReadAt(context.Background(), got, 0); n != len(data) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ after a resumed transfer")
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.starts) != 2 || bs.starts[0] != 0 || bs.starts[1] != 3*testBlock {
		t.Errorf("GETs started at %v, want [0 %d]", bs.starts, 3*testBlock)
	}
}

// stallingStore sends `first` bytes of the first GET body, then stops
// sending without closing, as a stuck connection does.
type stallingStore struct {
	store.ObjectStore
	first  int64
	stalls atomic.Int32
}

func (s *stallingStore) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := s.ObjectStore.ReadRange(ctx, bucket, key, etag, off, n)
	if err != nil || s.stalls.Add(-1) < 0 {
		return rc, err
	}
	return io.NopCloser(io.MultiReader(io.LimitReader(rc, s.first), ctxReader{ctx})), nil
}

// ctxReader blocks until ctx ends, then fails as a cancelled read does.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

// A stalled transfer is cut after the stall timeout and resumed; the
// reader gets the right bytes instead of hanging.
func TestStalledTransferRetried(t *testing.T) {
	f, data, o := newDataFixture(t, Config{}, 4*testBlock)
	ss := &stallingStore{ObjectStore: f.fault, first: testBlock + 10}
	ss.stalls.Store(1)
	c := New(ss, Config{BlockSize: testBlock, StallTimeout: 200 * time.Millisecond})
	c.data.request(object{bucket: "b", key: o.Key, etag: o.ETag, size: o.Size}, 0, 3, false)
	r := c.Open("b", o)
	defer r.Close()
	start := time.Now()
	got := make([]byte, len(data))
	if n, err := r.ReadAt(context.Background(), got, 0); n != len(data) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ after a stalled transfer")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("read took %v; the stall should have been cut after 200ms", d)
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != 2 {
		t.Errorf("GETs = %d, want 2 (the stalled one and its resumption)", n)
	}
}

// CachedBytes follows what the block cache holds: it grows as blocks arrive
// (the last one short) and never passes the capacity once blocks are evicted.
func TestCachedBytes(t *testing.T) {
	size := 3*testBlock + 100
	f, _, o := newDataFixture(t, Config{DataBytes: 8 * testBlock}, size)
	if st := f.c.Stats(); st.CachedBytes != 0 || st.CapacityBytes != 8*testBlock {
		t.Fatalf("empty cache: %+v", st)
	}
	r := f.c.Open("b", o)
	if _, err := r.ReadAt(context.Background(), make([]byte, size), 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	r.Close()
	if st := f.c.Stats(); st.CachedBytes != int64(size) {
		t.Fatalf("after reading %d bytes: cached %d", size, st.CachedBytes)
	}
	for i := 0; i < 4; i++ {
		if _, err := f.mem.Put(context.Background(), "b", fmt.Sprintf("big%d", i), bytes.NewReader(randomBytes(4*testBlock, int64(i))), 4*testBlock); err != nil {
			t.Fatal(err)
		}
		ob, err := f.c.statFile(context.Background(), "b", fmt.Sprintf("big%d", i))
		if err != nil {
			t.Fatal(err)
		}
		rb := f.c.Open("b", ob)
		if _, err := rb.ReadAt(context.Background(), make([]byte, 4*testBlock), 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		rb.Close()
		if st := f.c.Stats(); st.CachedBytes > st.CapacityBytes || st.CachedBytes <= 0 {
			t.Fatalf("after object %d: cached %d of %d", i, st.CachedBytes, st.CapacityBytes)
		}
	}
}

// A sequential reader keeps its read-ahead window full to within one run:
// as many GETs stay in flight as the window holds runs. (Topping it up
// only after half of it was read let throughput sag by half whenever the
// network, not the CPU, was the limit.)
func TestReadAheadWindowKeptFull(t *testing.T) {
	const run = 4
	size := 256 * testBlock
	f, _, o := newDataFixture(t, Config{DataBytes: 512 * testBlock, MaxReadAhead: 32 * testBlock, MaxInflightBytes: 64 * testBlock, MaxRunBlocks: run}, size)
	r := f.c.Open("b", o)
	defer r.Close()
	p := make([]byte, testBlock)
	for off := int64(0); off < int64(size)-64*testBlock; off += testBlock {
		if _, err := r.ReadAt(context.Background(), p, off); err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		window, ahead, bound := r.window, r.ahead, r.windowBound()
		r.mu.Unlock()
		end := off + testBlock
		if window == bound && ahead-end < window-run*testBlock {
			t.Fatalf("after reading to %d blocks: read-ahead reaches %d blocks ahead, want at least %d (window %d less one run)",
				end/testBlock, (ahead-end)/testBlock, (window-run*testBlock)/testBlock, window/testBlock)
		}
	}
}
