package disk

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const bs = 4096

func key(obj string, idx int64) Key {
	return Key{Bucket: "b", Object: obj, ETag: `"e1"`, BlockSize: bs, Index: idx}
}

// Put is PutSum with the checksum computed here.
func (c *Cache) Put(ctx context.Context, k Key, data []byte, done func()) {
	c.PutSum(ctx, k, data, Sum(data), done)
}

// PutSum is PutRun of one block.
func (c *Cache) PutSum(ctx context.Context, k Key, data []byte, sum uint32, done func()) {
	var d func(int)
	if done != nil {
		d = func(int) { done() }
	}
	c.PutRun(ctx, []Key{k}, [][]byte{data}, []uint32{sum}, d)
}

// PutNow writes block k before it returns (Land of one block).
func (c *Cache) PutNow(k Key, data []byte) {
	c.Land([]Key{k}, func(int, []byte) ([]byte, bool) { return data, true })
}

func block(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// clock is an injected clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, cfg Config) *Cache {
	t.Helper()
	c, _, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// settle waits until the writers have written n blocks.
func settle(t *testing.T, c *Cache, blocks int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		q := c.queued
		c.mu.Unlock()
		if q == 0 && c.Stats().Blocks >= blocks {
			return
		}
	}
	t.Fatalf("blocks not written: %+v", c.Stats())
}

func TestSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blocks")
	c, _, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c.Put(context.Background(), key("k", 0), block(1, bs), nil)
	c.Put(context.Background(), key("k", 1), block(2, 100), nil)
	settle(t, c, 2)
	c.Close(context.Background())

	c = open(t, Config{Dir: dir})
	if s := c.Stats(); s.Blocks != 2 {
		t.Fatalf("reopened with %d blocks, want 2", s.Blocks)
	}
	for i, want := range [][]byte{block(1, bs), block(2, 100)} {
		got, ok := c.Get(key("k", int64(i)))
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("block %d: ok=%v, %d bytes", i, ok, len(got))
		}
	}
	// GetInto reads into the buffer it is given when the block fits, else
	// into a new one.
	for _, tc := range []struct {
		dst   []byte
		inDst bool
	}{{make([]byte, 0, bs), true}, {make([]byte, 0, bs-1), false}} {
		got, ok := c.GetInto(context.Background(), key("k", 0), tc.dst)
		if !ok || !bytes.Equal(got, block(1, bs)) {
			t.Fatalf("GetInto: ok=%v, %d bytes", ok, len(got))
		}
		if inDst := &got[0] == &tc.dst[:1][0]; inDst != tc.inDst {
			t.Errorf("GetInto into a buffer of capacity %d: in it %v, want %v", cap(tc.dst), inDst, tc.inDst)
		}
	}
	// Another ETag, block size or index is another block.
	for _, k := range []Key{
		{Bucket: "b", Object: "k", ETag: `"e2"`, BlockSize: bs, Index: 0},
		{Bucket: "b", Object: "k", ETag: `"e1"`, BlockSize: 2 * bs, Index: 0},
		{Bucket: "b2", Object: "k", ETag: `"e1"`, BlockSize: bs, Index: 0},
		key("k", 2),
	} {
		if _, ok := c.Get(k); ok {
			t.Errorf("%+v served", k)
		}
	}
	if s := c.Stats(); s.Hits != 4 || s.Misses != 4 || s.BytesRead != 3*bs+100 {
		t.Errorf("stats %+v", s)
	}
}

func TestNoETagNotKept(t *testing.T) {
	c := open(t, Config{Dir: t.TempDir()})
	k := key("k", 0)
	k.ETag = ""
	c.Put(context.Background(), k, block(1, bs), nil)
	c.PutNow(k, block(1, bs))
	c.Put(context.Background(), key("other", 0), block(1, bs), nil)
	settle(t, c, 1)
	if s := c.Stats(); s.Blocks != 1 {
		t.Fatalf("%d blocks kept, want only the one with an ETag", s.Blocks)
	}
	if _, ok := c.Get(k); ok {
		t.Fatal("a block without an ETag was served")
	}
}

// TestDamage damages a block file between two mounts: every damage is
// caught, the file removed, the block a miss.
func TestDamage(t *testing.T) {
	other := key("other", 5).file(1).path("")
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, p string)
	}{
		{"flip a data byte", func(t *testing.T, p string) { flip(t, p, -10) }},
		{"flip a header byte", func(t *testing.T, p string) { flip(t, p, 12) }},
		{"flip the ETag", func(t *testing.T, p string) { flip(t, p, 8+24+6+1+1+1) }},
		{"truncate the data", func(t *testing.T, p string) { trunc(t, p, -1) }},
		{"truncate the header", func(t *testing.T, p string) { trunc(t, p, 20) }},
		{"empty", func(t *testing.T, p string) { trunc(t, p, 0) }},
		{"grow", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("x"))
			f.Close()
		}},
		{"another block's file", func(t *testing.T, p string) {
			dir := filepath.Dir(filepath.Dir(p))
			q := filepath.Join(dir, other)
			os.MkdirAll(filepath.Dir(q), 0o700)
			if err := os.Rename(q, p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, _, err := Open(Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			c.Put(context.Background(), key("k", 0), block(3, bs), nil)
			c.Put(context.Background(), key("other", 5), block(4, bs), nil)
			settle(t, c, 2)
			c.Close(context.Background())
			p := key("k", 0).file(1).path(dir)
			tc.damage(t, p)

			c = open(t, Config{Dir: dir})
			if got, ok := c.Get(key("k", 0)); ok {
				t.Fatalf("damaged block served (%d bytes)", len(got))
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("damaged file left: %v", err)
			}
			if s := c.Stats(); s.Errors != 1 || s.Off != "" {
				t.Fatalf("stats %+v", s)
			}
			// Fetched again, it is kept again.
			c.Put(context.Background(), key("k", 0), block(3, bs), nil)
			time.Sleep(10 * time.Millisecond)
			settle(t, c, 1)
			if got, ok := c.Get(key("k", 0)); !ok || !bytes.Equal(got, block(3, bs)) {
				t.Fatalf("block not kept again")
			}
		})
	}
}

func flip(t *testing.T, p string, off int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(b))
	}
	b[off] ^= 0x40
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func trunc(t *testing.T, p string, n int64) {
	t.Helper()
	if n < 0 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

// TestBoundAndOrder: the size bound holds, and the least recently used
// blocks go first, in the order they were used before a restart too.
func TestBoundAndOrder(t *testing.T) {
	dir := t.TempDir()
	// The clock starts now: the order on disk is the files' times.
	clk := &clock{t: time.Now()}
	per := fileSize(bs) // one block file, header included
	c, _, err := Open(Config{Dir: dir, Limit: 4 * per, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(4) {
		clk.add(2 * time.Minute)
		c.PutNow(key("k", i), block(byte(i), bs))
	}
	clk.add(2 * time.Minute)
	if _, ok := c.Get(key("k", 0)); !ok { // 0 is now the most recent
		t.Fatal("block 0 missing")
	}
	clk.add(2 * time.Minute)
	c.PutNow(key("k", 4), block(4, bs)) // evicts 1
	s := c.Stats()
	if s.Bytes > 4*per || s.Blocks != 4 || s.Evictions != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := c.Get(key("k", 1)); ok {
		t.Fatal("block 1, the least recently used, was kept")
	}
	c.Close(context.Background())

	// Reopened with room for two: the two most recently used stay (4, 0).
	c = open(t, Config{Dir: dir, Limit: 2 * per, Now: clk.now})
	if s := c.Stats(); s.Blocks != 2 || s.Evictions != 2 {
		t.Fatalf("stats %+v", s)
	}
	for i, want := range map[int64]bool{0: true, 2: false, 3: false, 4: true} {
		if _, ok := c.Get(key("k", i)); ok != want {
			t.Errorf("block %d kept=%v, want %v", i, ok, want)
		}
	}
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Name() != "lock" {
			n++
		}
		return nil
	})
	if n != 2 {
		t.Fatalf("%d block files on disk, want 2", n)
	}
}

func TestLeftovers(t *testing.T) {
	dir := t.TempDir()
	c, _, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c.PutNow(key("k", 0), block(1, bs))
	c.Close(context.Background())
	p := key("k", 1).file(1).path(dir)
	tmp := p + ".tmp7"                            // a write killed before its rename
	mine := filepath.Join(dir, "00", "notes.txt") // not ours: left alone
	os.MkdirAll(filepath.Dir(tmp), 0o700)
	os.MkdirAll(filepath.Dir(mine), 0o700)
	os.WriteFile(tmp, []byte("half a block"), 0o600)
	os.WriteFile(mine, []byte("x"), 0o600)

	c = open(t, Config{Dir: dir})
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Error("temporary file of an unfinished write left")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Error("a file that is not a block was removed")
	}
	if s := c.Stats(); s.Blocks != 1 {
		t.Errorf("%d blocks indexed, want 1", s.Blocks)
	}
}

func TestRefusedDirectories(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"world-writable", func(t *testing.T, dir string) { os.Mkdir(dir, 0o700); os.Chmod(dir, 0o777) }, "writable by others (mode 0777): chmod 700"},
		{"group-writable", func(t *testing.T, dir string) { os.Mkdir(dir, 0o700); os.Chmod(dir, 0o770) }, "writable by others (mode 0770)"},
		{"a file", func(t *testing.T, dir string) { os.WriteFile(dir, nil, 0o600) }, "is not a directory"},
		{"someone else's", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a directory away")
			}
			os.Mkdir(dir, 0o700)
			os.Chown(dir, 4242, 4242)
		}, "belongs to uid 4242, not to you"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "blocks")
			tc.setup(t, dir)
			_, _, err := Open(Config{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line with %q", err, tc.want)
			}
		})
	}
	// Created for us: 0700, and the block files 0600.
	dir := filepath.Join(t.TempDir(), "a", "blocks")
	c := open(t, Config{Dir: dir})
	c.PutNow(key("k", 0), block(1, bs))
	for _, p := range []string{dir, filepath.Dir(dir), filepath.Dir(key("k", 0).file(1).path(dir))} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v", p, fi.Mode())
		}
	}
	if fi, _ := os.Stat(key("k", 0).file(1).path(dir)); fi.Mode().Perm() != 0o600 {
		t.Errorf("block file mode %v", fi.Mode())
	}
}

func TestSecondMountRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, Config{Dir: dir})
	_, _, err := Open(Config{Dir: dir})
	want := fmt.Sprintf("disk cache directory %s is in use by another bucketfs mount (pid %d): give each mount its own --disk-cache directory", dir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second open: %v\nwant %s", err, want)
	}
}

// TestRemountWhileClosing: a mount whose directory's holder is closing
// (its unmount is done, it writes its last queued blocks) waits for the
// lock rather than being refused, and one that waits too long is refused.
func TestRemountWhileClosing(t *testing.T) {
	for _, tt := range []struct {
		name    string
		closing bool
		hold    time.Duration
		wait    time.Duration
		ok      bool
	}{
		{"closing holder is waited for", true, 200 * time.Millisecond, 5 * time.Second, true},
		{"closing holder past the wait", true, time.Second, 300 * time.Millisecond, false},
		{"live holder is refused at once", false, 200 * time.Millisecond, 5 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			held, err := lockDir(dir, 0, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if tt.closing {
				markClosing(held)
			}
			released := make(chan struct{})
			go func() { time.Sleep(tt.hold); held.Close(); close(released) }()
			t0 := time.Now()
			f, err := lockDir(dir, tt.wait, slog.New(slog.DiscardHandler))
			took := time.Since(t0)
			if (err == nil) != tt.ok {
				t.Fatalf("lock after %v: %v, want ok=%v", took, err, tt.ok)
			}
			if err == nil {
				f.Close()
			} else if !tt.closing && took > 100*time.Millisecond {
				t.Errorf("refused after %v, want at once", took)
			}
			<-released
		})
	}
}

// TestQueueFull: with the queue full, Put waits at most PutWait, then
// drops; every block is either written or counted as dropped.
func TestQueueFull(t *testing.T) {
	c := open(t, Config{Dir: t.TempDir(), QueueBytes: 2 * bs, PutWait: time.Millisecond})
	t0 := time.Now()
	for i := range int64(1000) {
		c.Put(context.Background(), key("k", i), block(byte(i), bs), nil)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("1000 Puts took %v", d)
	}
	settle(t, c, 1)
	if s := c.Stats(); s.Blocks+s.Dropped != 1000 {
		t.Fatalf("stats %+v: blocks lost uncounted", s)
	}
}

// TestDiskFull fills a small tmpfs: the tier turns off, says why, and
// never fails a Get or blocks a Put.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	c, warning, err := Open(Config{Dir: dir, Limit: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if !strings.Contains(warning, "less than --disk-cache-size") {
		t.Errorf("warning %q", warning)
	}
	for i := range int64(100) {
		c.PutNow(key("k", i), block(byte(i), bs))
	}
	s := c.Stats()
	if !strings.Contains(s.Off, "no space left on device") {
		t.Fatalf("tier still on after filling the disk: %+v", s)
	}
	if _, ok := c.Get(key("k", 0)); ok {
		t.Error("tier off but served a block")
	}
	c.Put(context.Background(), key("k", 200), block(1, bs), nil) // no effect, no wait
}

func TestNetworkFS(t *testing.T) {
	if fs := networkFS(t.TempDir()); fs != "" {
		t.Skipf("TMPDIR is on %s", fs)
	}
	if fs := networkFS("/proc"); fs != "" {
		t.Errorf("/proc seen as %q", fs)
	}
}

// indexBound is how long indexing 100,000 blocks may take.
var indexBound = time.Second

// TestIndex100k: the index of 100,000 blocks is rebuilt well under a second.
func TestIndex100k(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	dir := t.TempDir()
	fill(t, dir, 100_000)
	// The best of three opens, so that a busy machine (CI, other tests
	// in parallel) does not fail a test about how the index is built.
	var best time.Duration
	for i := range 3 {
		t0 := time.Now()
		c, _, err := Open(Config{Dir: dir, Limit: 1 << 40})
		d := time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		blocks := c.Stats().Blocks
		c.Close(context.Background())
		if blocks != 100_000 {
			t.Fatalf("%d blocks indexed", blocks)
		}
		if i == 0 || d < best {
			best = d
		}
		if best <= indexBound {
			break
		}
	}
	t.Logf("indexed 100,000 blocks in %v", best)
	if best > indexBound {
		t.Errorf("indexing 100,000 blocks took %v (best of three), more than %v", best, indexBound)
	}
}

// fill makes n small block files (the index reads names and sizes only).
func fill(tb testing.TB, dir string, n int) {
	for i := range n {
		p := key("k", int64(i)).file(1).path(dir)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func BenchmarkIndex100k(b *testing.B) {
	dir := b.TempDir()
	fill(b, dir, 100_000)
	b.ResetTimer()
	for range b.N {
		c, _, err := Open(Config{Dir: dir, Limit: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		c.Close(context.Background())
	}
}
