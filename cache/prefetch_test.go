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
		o, err := f.c.statFile(ctx, "b", fmt.Sprintf("dir/part-%03d.csv", i))
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
		o, _ := f.c.statFile(ctx, "b", fmt.Sprintf("d/f%02d", i))
		f.c.Open("b", o).Close()
	}
	time.Sleep(20 * time.Millisecond)
	if gets := f.fault.Count(faultstore.OpReadAt); gets != 0 {
		t.Errorf("random opens without reads sent %d GETs", gets)
	}
}

// Walking subdirectories in listing order (find, ls -R) lists the next
// ones in the background; each directory is still listed exactly once.
func TestSubdirPrefetch(t *testing.T) {
	keys := map[string]string{}
	for d := 0; d < 20; d++ {
		for f := 0; f < 5; f++ {
			keys[fmt.Sprintf("tree/part=%02d/f%d.csv", d, f)] = "x"
		}
	}
	f := newFixture(t, Config{}, keys)
	lists := func() int64 { return f.fault.Count(faultstore.OpList) }
	readAll(t, f.c, "b", "tree/")
	readAll(t, f.c, "b", "tree/part=00/")
	readAll(t, f.c, "b", "tree/part=01/") // a streak: the next ones are listed ahead
	deadline := time.Now().Add(5 * time.Second)
	for lists() < 3+4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := lists(); got != 3+4 {
		t.Fatalf("LIST calls after two subdirectories = %d, want 3 + 4 listed ahead", got)
	}
	for d := 2; d <= 5; d++ {
		if es := readAll(t, f.c, "b", fmt.Sprintf("tree/part=%02d/", d)); len(es) != 5 {
			t.Fatalf("part=%02d has %d entries", d, len(es))
		}
	}
	for d := 6; d < 20; d++ {
		readAll(t, f.c, "b", fmt.Sprintf("tree/part=%02d/", d))
	}
	time.Sleep(20 * time.Millisecond)
	if got := lists(); got != 21 {
		t.Errorf("LIST calls for the whole walk = %d, want 21 (each directory once)", got)
	}
}

// A readdir of a directory that a background walk is listing waits for it
// instead of listing it again.
func TestReadDirJoinsBackgroundWalk(t *testing.T) {
	f := newFixture(t, Config{}, map[string]string{"d/x": "1", "d/y": "2"})
	gate := make(chan struct{})
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpList {
			<-gate
		}
		return nil
	})
	f.c.walk(context.Background(), f.c.meta, "b", "d/")
	time.Sleep(20 * time.Millisecond)
	done := make(chan []DirEntry)
	go func() { done <- readAll(t, f.c, "b", "d/") }()
	time.Sleep(20 * time.Millisecond)
	close(gate)
	if es := <-done; len(es) != 2 {
		t.Fatalf("entries = %v", es)
	}
	if n := f.fault.Count(faultstore.OpList); n != 1 {
		t.Errorf("LIST calls = %d, want 1", n)
	}
}
