package namespace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
)

func TestListTree(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	for i := range 25 {
		e.mem.Put(ctx, bkt, fmt.Sprintf("t/%02d/f", i), strings.NewReader("x"), 1)
	}
	tests := []struct {
		max      int
		wantN    int
		wantMore bool
	}{{10, 10, true}, {25, 25, false}, {100, 25, false}}
	for _, tc := range tests {
		objs, more, err := e.ns.listTree(ctx, bkt, "t/", tc.max)
		if err != nil || len(objs) != tc.wantN || more != tc.wantMore {
			t.Errorf("listTree(max %d) = %d objects, more %v, %v; want %d, %v", tc.max, len(objs), more, err, tc.wantN, tc.wantMore)
		}
	}
}

func TestFetch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	data := bytes.Repeat([]byte("0123456789abcdef"), (fetchChunk*2+4096)/16)
	e.mem.Put(ctx, bkt, "big", bytes.NewReader(data), int64(len(data)))
	e.mem.Put(ctx, bkt, "empty", bytes.NewReader(nil), 0)
	for _, key := range []string{"big", "empty"} {
		obj, err := e.mem.Stat(ctx, bkt, key)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(t.TempDir(), key))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ns.fetch(ctx, bkt, obj, f); err != nil {
			t.Fatalf("fetch(%s): %v", key, err)
		}
		f.Close()
		got, _ := os.ReadFile(f.Name())
		want := data
		if key == "empty" {
			want = nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("fetch(%s): %d bytes differ from %d", key, len(got), len(want))
		}
	}
	obj, _ := e.mem.Stat(ctx, bkt, "big")
	e.mem.Put(ctx, bkt, "big", bytes.NewReader([]byte("new")), 3)
	f, _ := os.Create(filepath.Join(t.TempDir(), "changed"))
	defer f.Close()
	if err := e.ns.fetch(ctx, bkt, obj, f); !errors.Is(err, store.ErrChanged) {
		t.Errorf("fetch of a replaced object = %v, want ErrChanged", err)
	}
	// The first failure cancels the ranges not yet started: one fails,
	// and far fewer than all of them are asked for.
	e.mem.Put(ctx, bkt, "big", bytes.NewReader(data), int64(len(data)))
	big := bytes.Repeat(data, 4) // 12 chunks
	o, _ := e.mem.Put(ctx, bkt, "big", bytes.NewReader(big), int64(len(big)))
	e.failOn(faultstore.OpReadAt, "*", -1, errBoom)
	before := e.fault.Count(faultstore.OpReadAt)
	if err := e.ns.fetch(ctx, bkt, o, f); !errors.Is(err, store.ErrThrottled) {
		t.Errorf("fetch with failing GETs = %v, want the injected error", err)
	}
	if n := e.fault.Count(faultstore.OpReadAt) - before; n > fetchParallel {
		t.Errorf("%d GETs after the first failed, want at most %d (the rest cancelled)", n, fetchParallel)
	}
}
