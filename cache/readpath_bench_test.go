package cache

import (
	"context"
	"testing"

	"github.com/bucketfs/bucketfs/store/faultstore"
)

// BenchmarkSpanCached is the daemon's own work per READ of a sequential
// reader whose blocks are already cached (what a mount made by an
// ordinary user does 8,192 times per GiB: the kernel's 128 KiB reads):
// the read-ahead plan, the block lookups and the Hold, without any fetch.
// A second, idle Reader of the object keeps drop-behind off, so every
// pass after the first finds all its blocks in the cache.
func BenchmarkSpanCached(b *testing.B) {
	const size = 64 << 20
	f := newFixture(b, Config{BlockSize: 1 << 20}, map[string]string{"obj": string(make([]byte, size))})
	ctx := context.Background()
	o, err := f.c.statFile(ctx, "b", "obj")
	if err != nil {
		b.Fatal(err)
	}
	idle := f.c.Open("b", o)
	defer idle.Close()
	buf := make([]byte, 128<<10)
	pass := func(r *Reader) {
		for off := int64(0); off < size; off += int64(len(buf)) {
			_, _, hold, err := r.Span(ctx, buf, off)
			if err != nil && off+int64(len(buf)) < size {
				b.Fatal(err)
			}
			hold.Release()
		}
	}
	r := f.c.Open("b", o)
	pass(r) // fetch every block
	r.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var r2 *Reader
	for i := 0; i < b.N; i++ {
		off := int64(i%(size/len(buf))) * int64(len(buf))
		if off == 0 {
			if r2 != nil {
				r2.Close()
			}
			r2 = f.c.Open("b", o)
		}
		_, _, hold, err := r2.Span(ctx, buf, off)
		if err != nil && off+int64(len(buf)) < size {
			b.Fatal(err)
		}
		hold.Release()
	}
	b.StopTimer()
	r2.Close()
	if got := f.fault.Count(faultstore.OpReadAt); got > size>>20 {
		b.Fatalf("%d GETs: blocks were fetched again", got)
	}
}
