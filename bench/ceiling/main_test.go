package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/bucketfs/bucketfs/store/memstore"
)

func seeded(t *testing.T, size int) (*memstore.Store, []byte, string) {
	t.Helper()
	ctx := context.Background()
	st := memstore.New()
	if err := st.CreateBucket(ctx, "bench"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	obj, err := st.Put(ctx, "bench", "big.bin", bytes.NewReader(data), int64(size))
	if err != nil {
		t.Fatal(err)
	}
	return st, data, obj.ETag
}

func TestSequential(t *testing.T) {
	tests := []struct {
		name            string
		size            int
		chunk, parallel int
	}{
		{"chunks divide the size", 1 << 20, 64 << 10, 4},
		{"short last chunk", 1<<20 + 12345, 64 << 10, 3},
		{"more workers than chunks", 100_000, 64 << 10, 16},
		{"one chunk", 1000, 1 << 20, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, data, etag := seeded(t, tc.size)
			cr := &countingReader{r: st}
			c := config{bucket: "bench", key: "big.bin", parallel: tc.parallel, chunk: int64(tc.chunk)}
			res, err := sequential(context.Background(), cr, c, etag, int64(tc.size))
			if err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(data)
			if res.SHA256 != hex.EncodeToString(want[:]) || res.Bytes != int64(tc.size) {
				t.Errorf("got %d bytes sha %s, want %d bytes sha %x", res.Bytes, res.SHA256, tc.size, want)
			}
			if wantReq := int64((tc.size + tc.chunk - 1) / tc.chunk); cr.n.Load() != wantReq {
				t.Errorf("%d GETs, want %d", cr.n.Load(), wantReq)
			}
		})
	}
}

func TestSequentialStaleETag(t *testing.T) {
	st, _, _ := seeded(t, 1<<20)
	c := config{bucket: "bench", key: "big.bin", parallel: 4, chunk: 64 << 10}
	if _, err := sequential(context.Background(), st, c, "not-the-etag", 1<<20); err == nil {
		t.Fatal("a read pinned to a wrong ETag succeeded")
	}
}

func TestRandom(t *testing.T) {
	st, _, etag := seeded(t, 1<<20)
	cr := &countingReader{r: st}
	c := config{bucket: "bench", key: "big.bin", count: 50, size: 4096, seed: 7}
	res, err := random(context.Background(), cr, c, etag, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != 50*4096 || cr.n.Load() != 50 {
		t.Errorf("read %d bytes in %d GETs, want %d in 50", res.Bytes, cr.n.Load(), 50*4096)
	}
	if _, err := random(context.Background(), st, config{bucket: "bench", key: "big.bin", count: 1, size: 2 << 20}, etag, 1<<20); err == nil {
		t.Error("reads larger than the object were accepted")
	}
}
