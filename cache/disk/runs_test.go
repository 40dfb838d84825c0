package disk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// putRun queues blocks [first, first+n) of obj (the last one last bytes
// long, 0: whole) as one run and waits until they are written.
func putRun(t *testing.T, c *Cache, obj string, first, n int64, last int) {
	t.Helper()
	ks, datas, sums := runOf(obj, first, n, last)
	c.PutRun(context.Background(), ks, datas, sums, nil)
	before := c.Stats().Blocks
	settle(t, c, before)
}

func runOf(obj string, first, n int64, last int) ([]Key, [][]byte, []uint32) {
	var ks []Key
	var datas [][]byte
	var sums []uint32
	for i := first; i < first+n; i++ {
		d := blockOf(obj, i, bs)
		if i == first+n-1 && last > 0 {
			d = d[:last]
		}
		ks, datas, sums = append(ks, key(obj, i)), append(datas, d), append(sums, Sum(d))
	}
	return ks, datas, sums
}

// blockOf is block i of obj: bytes that differ between blocks and objects.
func blockOf(obj string, i int64, n int) []byte {
	return block(byte(len(obj)*31+int(i)*7), n)
}

// files lists the block files under dir by name.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Name() != "lock" {
			names = append(names, fi.Name())
		}
		return nil
	})
	return names
}

// TestRuns: the blocks of a GET go into one file; every block of it is
// served, across a restart, and a damaged block drops its whole file.
func TestRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup writes to c (open on dir) and returns the blocks of
		// obj "k" it expects served, and the number of files.
		setup  func(t *testing.T, c *Cache, dir string)
		served map[int64]int // block -> length; missing: not served
		files  int
		errors int64
	}{
		{"run of four", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 0, 4, 0)
		}, map[int64]int{0: bs, 1: bs, 2: bs, 3: bs}, 1, 0},
		{"run ending with the object's short last block", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 4, 3, 100)
		}, map[int64]int{4: bs, 5: bs, 6: 100}, 1, 0},
		{"partial run around a block on disk", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 1, 1, 0)
			putRun(t, c, "k", 0, 4, 0) // 0, then 2-3: block 1 is not written twice
		}, map[int64]int{0: bs, 1: bs, 2: bs, 3: bs}, 3, 0},
		{"overlapping run queued while the first is written", func(t *testing.T, c *Cache, dir string) {
			ks, datas, sums := runOf("k", 0, 4, 0)
			c.PutRun(context.Background(), ks, datas, sums, nil)
			ks, datas, sums = runOf("k", 2, 4, 0)
			c.PutRun(context.Background(), ks, datas, sums, nil)
			settle(t, c, 6)
		}, map[int64]int{0: bs, 1: bs, 2: bs, 3: bs, 4: bs, 5: bs}, 2, 0},
		{"a gap splits the file", func(t *testing.T, c *Cache, dir string) {
			ks, datas, sums := runOf("k", 0, 4, 0)
			c.PutRun(context.Background(), append(ks[:2:2], ks[3]), append(datas[:2:2], datas[3]), append(sums[:2:2], sums[3]), nil)
			settle(t, c, 3)
		}, map[int64]int{0: bs, 1: bs, 3: bs}, 2, 0},
		{"corrupt data of a run's last block", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 0, 4, 0)
			flip(t, key("k", 0).file(4).path(dir), 3*stride(bs)+page+10)
		}, map[int64]int{}, 0, 1},
		{"corrupt header of a run's last block", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 0, 4, 0)
			flip(t, key("k", 0).file(4).path(dir), 3*stride(bs)+12)
		}, map[int64]int{}, 0, 1},
		{"corrupt data of a block inside a run", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 1, 4, 0)
			flip(t, key("k", 1).file(4).path(dir), stride(bs)+page+bs-1) // block 2
		}, map[int64]int{3: bs}, 0, 1},
		{"truncated run", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 0, 4, 0)
			trunc(t, key("k", 0).file(4).path(dir), 3*stride(bs))
		}, map[int64]int{}, 0, 1},
		{"run cut inside its last block", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 0, 4, 0)
			trunc(t, key("k", 0).file(4).path(dir), -page)
		}, map[int64]int{}, 0, 1},
		{"a file of another run under a run's name", func(t *testing.T, c *Cache, dir string) {
			putRun(t, c, "k", 0, 2, 0)
			putRun(t, c, "k", 10, 2, 0)
			if err := os.Rename(key("k", 10).file(2).path(dir), key("k", 0).file(2).path(dir)); err != nil {
				t.Fatal(err)
			}
		}, map[int64]int{}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _, err := Open(Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(t, c, dir)
			c.Close(context.Background())

			c = open(t, Config{Dir: dir}) // a restart
			// Every block asked for, a damaged one first: it drops
			// its file before the others of it, still whole, are
			// asked for (each block is checked when read).
			for _, i := range []int64{3, 2, 7, 6, 5, 4, 1, 0} {
				want, ok := tc.served[i]
				got, served := c.Get(key("k", i))
				if served != ok {
					t.Fatalf("block %d served=%v, want %v (stats %+v)", i, served, ok, c.Stats())
				}
				if ok && !bytes.Equal(got, blockOf("k", i, bs)[:want]) {
					t.Fatalf("block %d: wrong bytes", i)
				}
			}
			s := c.Stats()
			if got := files(t, dir); len(got) != tc.files {
				t.Fatalf("files %v, want %d", got, tc.files)
			}
			held := int64(len(tc.served))
			if tc.errors > 0 {
				held = 0 // the damaged file went, with the block served before
			}
			if s.Errors != tc.errors || s.Blocks != held || s.Off != "" {
				t.Fatalf("stats %+v", s)
			}
			if tc.errors > 0 {
				// Fetched again, kept again.
				putRun(t, c, "k", 0, 4, 0)
				if got, ok := c.Get(key("k", 2)); !ok || !bytes.Equal(got, blockOf("k", 2, bs)) {
					t.Fatal("block 2 not kept again")
				}
			}
		})
	}
}

// TestRunEviction: a file goes as a whole, the least recently used first.
func TestRunEviction(t *testing.T) {
	dir := t.TempDir()
	c := open(t, Config{Dir: dir, Limit: 6 * stride(bs)})
	putRun(t, c, "a", 0, 4, 0)
	putRun(t, c, "b", 0, 4, 0)
	s := c.Stats()
	if s.Blocks != 4 || s.Evictions != 4 || s.Bytes != 4*stride(bs) {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := c.Get(key("a", 3)); ok {
		t.Fatal("a block of the evicted file served")
	}
	if got, ok := c.Get(key("b", 3)); !ok || !bytes.Equal(got, blockOf("b", 3, bs)) {
		t.Fatal("a block of the file kept not served")
	}
	if got := files(t, dir); len(got) != 1 || got[0] != key("b", 0).file(4).name() {
		t.Fatalf("files %v", got)
	}
}

// TestOverlapAtStart: two files on disk holding one block (not something
// the writers make) give one answer; the newer file is removed.
func TestOverlapAtStart(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	clk := &clock{}
	c := open(t, Config{Dir: dir, Now: clk.now})
	putRun(t, c, "k", 0, 4, 0)
	c.Close(context.Background())
	d := open(t, Config{Dir: other})
	putRun(t, d, "k", 2, 4, 0)
	d.Close(context.Background())
	old, newer := key("k", 0).file(4), key("k", 2).file(4)
	if err := os.MkdirAll(filepath.Dir(newer.path(dir)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(newer.path(other), newer.path(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(old.path(dir), clk.now(), clk.now()); err != nil { // older
		t.Fatal(err)
	}
	c = open(t, Config{Dir: dir})
	if s := c.Stats(); s.Blocks != 4 {
		t.Fatalf("stats %+v", s)
	}
	for i := range int64(6) {
		got, ok := c.Get(key("k", i))
		if ok != (i < 4) || (ok && !bytes.Equal(got, blockOf("k", i, bs))) {
			t.Fatalf("block %d served=%v", i, ok)
		}
	}
	if got := files(t, dir); len(got) != 1 || got[0] != old.name() {
		t.Fatalf("files %v", got)
	}
}

// TestLandRuns: Land writes runs of up to landRun blocks as one file.
func TestLandRuns(t *testing.T) {
	dir := t.TempDir()
	c := open(t, Config{Dir: dir})
	c.PutNow(key("k", 5), blockOf("k", 5, bs)) // held: Land skips it
	var ks []Key
	for i := range int64(8) {
		ks = append(ks, key("k", i))
	}
	c.Land(ks, func(j int, dst []byte) ([]byte, bool) {
		want := blockOf("k", int64(j), bs)
		if j == 7 {
			want = want[:10]
		}
		return dst[:copy(dst, want)], true
	})
	for i := range int64(8) {
		want := blockOf("k", i, bs)
		if i == 7 {
			want = want[:10]
		}
		if got, ok := c.Get(key("k", i)); !ok || !bytes.Equal(got, want) {
			t.Fatalf("block %d not landed", i)
		}
	}
	// 0-3, 4, 5 (before), 6-7.
	if got := files(t, dir); len(got) != 4 {
		t.Fatalf("files %v", got)
	}
}

// TestRunOverBound: under a bound smaller than a run, the run's blocks
// are kept a file each, as many as fit.
func TestRunOverBound(t *testing.T) {
	dir := t.TempDir()
	c := open(t, Config{Dir: dir, Limit: 2 * stride(bs)})
	putRun(t, c, "k", 0, 4, 0)
	if s := c.Stats(); s.Blocks != 2 || s.Bytes > 2*stride(bs) {
		t.Fatalf("stats %+v", s)
	}
	for i := range int64(4) {
		if got, ok := c.Get(key("k", i)); ok != (i >= 2) || (ok && !bytes.Equal(got, blockOf("k", i, bs))) {
			t.Fatalf("block %d served=%v", i, ok)
		}
	}
}

// TestDamagedRunReadAtOnce: reads of several blocks of one damaged file
// at once (a read and its read-ahead) all find it damaged; it is dropped
// once and counted as one error.
func TestDamagedRunReadAtOnce(t *testing.T) {
	dir := t.TempDir()
	c := open(t, Config{Dir: dir})
	for round := range int64(40) {
		obj := "k" + strconv.FormatInt(round, 10)
		putRun(t, c, obj, 0, 4, 0)
		trunc(t, key(obj, 0).file(4).path(dir), 100)
		before := c.Stats().Errors
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range int64(4) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, ok := c.Get(key(obj, i)); ok {
					t.Errorf("round %d: block %d of a damaged file served", round, i)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := c.Stats().Errors - before; got != 1 {
			t.Fatalf("round %d: a damaged file read 4 ways at once counted %d errors, want 1", round, got)
		}
		if c.Stats().Blocks != 0 {
			t.Fatalf("round %d: stats %+v after the drop", round, c.Stats())
		}
	}
}
