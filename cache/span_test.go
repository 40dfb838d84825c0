package cache

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// Span returns the bytes of a read across two blocks as two slices of the
// cached blocks, not copied into the caller's buffer, and its Hold keeps
// both blocks' bytes until released; a read within one block is one
// slice, one over more than two blocks is read into the buffer.
func TestSpan(t *testing.T) {
	size := 16*testBlock + 100
	tests := []struct {
		name     string
		off, n   int
		twoParts bool // head and tail, both in cached blocks
		inBuf    bool // read into the caller's buffer
		eof      bool
	}{
		{name: "within a block", off: 10, n: 1000},
		{name: "a block exactly", off: testBlock, n: testBlock},
		{name: "across a boundary", off: testBlock / 2, n: testBlock, twoParts: true},
		{name: "two blocks exactly", off: 0, n: 2 * testBlock, twoParts: true},
		{name: "across into the short last block", off: 16*testBlock - 50, n: 1000, twoParts: true, eof: true},
		{name: "over three blocks", off: testBlock / 2, n: 2 * testBlock, inBuf: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, data, o := newDataFixture(t, Config{DataBytes: 32 * testBlock}, size)
			ctx := context.Background()
			// The blocks cached (a read from the start), so that the
			// read below comes from them, not from an exact GET.
			warm := f.c.Open("b", o)
			sliceAll(t, warm, data)
			warm.Close()
			r := f.c.Open("b", o)
			defer r.Close()
			buf := make([]byte, tt.n)
			head, tail, hold, err := r.Span(ctx, buf, int64(tt.off))
			if tt.eof != (err == io.EOF) || (err != nil && err != io.EOF) {
				t.Fatalf("err = %v, want EOF %v", err, tt.eof)
			}
			want := data[tt.off:min(tt.off+tt.n, size)]
			if got := append(append([]byte{}, head...), tail...); !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, not those at %d", len(got), tt.off)
			}
			if (tail != nil) != tt.twoParts {
				t.Fatalf("tail of %d bytes, want two parts %v", len(tail), tt.twoParts)
			}
			clear(buf)
			if inBuf := !bytes.Equal(head, want[:len(head)]); inBuf != tt.inBuf {
				t.Fatalf("head in the caller's buffer: %v, want %v", inBuf, tt.inBuf)
			}
			// Every block out of the cache and fetched again, into the
			// buffers of those evicted: held bytes stay as they were.
			f.c.data.lru.Purge()
			sliceAll(t, r, data)
			if !tt.inBuf {
				if got := append(append([]byte{}, head...), tail...); !bytes.Equal(got, want) {
					t.Fatal("held bytes changed after their blocks were evicted")
				}
			}
			// Released, and the cache emptied: every buffer is free again
			// (a block the Hold forgot would stay referenced for ever).
			hold.Release()
			waitFetches(f)
			f.c.data.lru.Purge()
			f.c.data.pool.mu.Lock()
			free := int64(len(f.c.data.pool.free))
			f.c.data.pool.mu.Unlock()
			if made := f.c.data.pool.allocated.Load(); free != made {
				t.Errorf("%d of %d buffers free after every hold was released", free, made)
			}
		})
	}
}

// The read-ahead window of a sequential run starts bounded to a quarter
// of its maximum and grows past that only when the run catches up with
// its own read-ahead: a store that answers before the reader needs the
// bytes keeps it at the quarter (fewer buffers filled long before they
// are read), a slow one lets it grow to the maximum.
func TestReadAheadWindowBound(t *testing.T) {
	const maxRA = 32 * testBlock
	tests := []struct {
		name       string
		getDelay   time.Duration // added to every GET
		settle     bool          // every fetch done before the next read
		wantWindow int64
	}{
		{name: "store ahead of the reader", settle: true, wantWindow: maxRA / startShare},
		{name: "reader ahead of the store", getDelay: 5 * time.Millisecond, wantWindow: maxRA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := 256 * testBlock
			f, data, o := newDataFixture(t, Config{DataBytes: 1024 * testBlock, MaxReadAhead: maxRA, MaxRunBlocks: 4}, size)
			f.fault.SetHook(func(ctx context.Context, op, _, _ string) error {
				if op == "ReadAt" && tt.getDelay > 0 {
					sleep(ctx, tt.getDelay)
				}
				return nil
			})
			r := f.c.Open("b", o)
			defer r.Close()
			p := make([]byte, testBlock)
			most := int64(0)
			for off := 0; off < 128*testBlock; off += testBlock {
				if tt.settle {
					waitFetches(f)
				}
				n, err := r.ReadAt(context.Background(), p, int64(off))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p[:n], data[off:off+n]) {
					t.Fatalf("bytes at %d differ", off)
				}
				r.mu.Lock()
				most = max(most, r.window)
				r.mu.Unlock()
			}
			if most != tt.wantWindow {
				t.Errorf("window grew to %d blocks, want %d", most/testBlock, tt.wantWindow/testBlock)
			}
		})
	}
}
