package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store/faultstore"
)

// Files of a directory opened in listing order: the next ones are fetched
// before they are opened, so most opens find their data cached.
func TestSiblingPrefetch(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 40; i++ {
		keys[fmt.Sprintf("dir/part-%03d.csv", i)] = fmt.Sprintf("row,%d\n", i)
	}
	keys["dir/sub/x"] = "not a sibling file"
	f := newFixture(t, Config{}, keys)
	ctx := context.Background()
	readAll(t, f.c, "b", "dir/") // the shell's glob, R's list.files

	misses := 0
	for i := 0; i < 40; i++ {
		o, err := f.c.StatFile(ctx, "b", fmt.Sprintf("dir/part-%03d.csv", i))
		if err != nil {
			t.Fatal(err)
		}
		before := f.c.Stats().BlockMisses
		r := f.c.Open("b", o)
		time.Sleep(2 * time.Millisecond) // prefetch runs in the background, as network time would pass
		p := make([]byte, 100)
		n, _ := r.ReadAt(ctx, p, 0)
		if string(p[:n]) != keys[o.Key] {
			t.Fatalf("%s = %q", o.Key, p[:n])
		}
		r.Close()
		if f.c.Stats().BlockMisses > before {
			misses++
		}
	}
	if misses > 3 {
		t.Errorf("%d of 40 files opened in order had to be fetched on read; prefetch should have fetched nearly all", misses)
	}
	if gets := f.fault.Count(faultstore.OpReadAt); gets != 40 {
		t.Errorf("GETs = %d, want one per file (40)", gets)
	}
}

// Opening files out of order prefetches nothing.
func TestNoPrefetchForRandomOpens(t *testing.T) {
	keys := map[string]string{}
	for i := 0; i < 20; i++ {
		keys[fmt.Sprintf("d/f%02d", i)] = "x"
	}
	f := newFixture(t, Config{}, keys)
	ctx := context.Background()
	readAll(t, f.c, "b", "d/")
	for _, i := range []int{7, 2, 15, 0, 11} {
		o, _ := f.c.StatFile(ctx, "b", fmt.Sprintf("d/f%02d", i))
		f.c.Open("b", o).Close()
	}
	time.Sleep(20 * time.Millisecond)
	if gets := f.fault.Count(faultstore.OpReadAt); gets != 0 {
		t.Errorf("random opens without reads sent %d GETs", gets)
	}
}
