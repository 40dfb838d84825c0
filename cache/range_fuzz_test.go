package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// FuzzReaderRange checks the range arithmetic of Reader.ReadAt and Slice
// against the in-memory store: whatever the object size, block size, offset
// and length, the bytes returned are the object's bytes at that offset, the
// count never exceeds the request or the object, a read short of the end is
// never short, and io.EOF comes exactly when the read reaches the end.
// Each input runs a second read, so read-ahead state from the first one
// (sequential or not) is exercised too.
func FuzzReaderRange(f *testing.F) {
	seeds := []struct {
		size, block, runBlocks uint32
		off1, n1, off2, n2     uint32
	}{
		{0, 1, 1, 0, 1, 0, 0},
		{1, 1, 1, 0, 1, 1, 1},
		{1000, 100, 2, 0, 1000, 999, 5},
		{1000, 100, 3, 99, 2, 100, 100},
		{1000, 128, 8, 1000, 10, 2000, 1},
		{4096, 4096, 1, 4095, 2, 0, 4096},
		{65537, 4096, 8, 65536, 4096, 4095, 8193},
		{300000, 65536, 8, 0, 131072, 131072, 131072},
	}
	for _, s := range seeds {
		f.Add(s.size, s.block, s.runBlocks, s.off1, s.n1, s.off2, s.n2)
	}
	f.Fuzz(func(t *testing.T, size, block, runBlocks, off1, n1, off2, n2 uint32) {
		size %= 1 << 20
		block = 1 + block%(64<<10)
		runBlocks = 1 + runBlocks%16
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*131 + i>>8)
		}
		ctx := context.Background()
		mem := memstore.New()
		mem.CreateBucket(ctx, "b")
		obj, err := mem.Put(ctx, "b", "k", bytes.NewReader(data), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(mem, cache.Config{
			BlockSize: int64(block), DataBytes: 4 * int64(block), MaxRunBlocks: int(runBlocks),
			MaxReadAhead: 8 * int64(block),
		})
		r := c.Open("b", obj)
		defer r.Close()
		for i, rd := range []struct{ off, n uint32 }{{off1, n1}, {off2, n2}} {
			off := int64(rd.off % (size + 2*block + 1))
			n := int(rd.n % (3*block + 1))
			check := func(what string, got []byte, err error) {
				t.Helper()
				if len(got) > n {
					t.Fatalf("read %d %s(off %d, len %d) of %d bytes: returned %d", i, what, off, n, size, len(got))
				}
				want := []byte{}
				if off < int64(size) {
					want = data[off:min(off+int64(n), int64(size))]
				}
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("read %d %s(off %d, len %d) of %d bytes: %v", i, what, off, n, size, err)
				}
				if !bytes.Equal(got, want[:min(len(want), len(got))]) {
					t.Fatalf("read %d %s(off %d, len %d) of %d bytes: wrong bytes", i, what, off, n, size)
				}
				if len(got) < len(want) {
					t.Fatalf("read %d %s(off %d, len %d) of %d bytes: short read of %d, want %d", i, what, off, n, size, len(got), len(want))
				}
				atEnd := off+int64(len(got)) >= int64(size)
				if n > 0 && atEnd != errors.Is(err, io.EOF) {
					t.Fatalf("read %d %s(off %d, len %d) of %d bytes: err %v at end=%v", i, what, off, n, size, err, atEnd)
				}
			}
			p := make([]byte, n)
			got, err := r.ReadAt(ctx, p, off)
			check("ReadAt", p[:got], err)
			s, hold, err := r.Slice(ctx, make([]byte, n), off)
			check("Slice", s, err)
			hold.Release()
		}
	})
}
