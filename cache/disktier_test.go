package cache

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/cache/disk"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
)

// openDisk opens the disk tier in dir and closes it (writing out its
// queue) at the end of the test, or when the returned func is called.
func openDisk(t *testing.T, dir string) (*disk.Cache, func()) {
	t.Helper()
	d, _, err := disk.Open(disk.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	done := false
	closeFn := func() {
		if !done {
			done = true
			d.Close(context.Background())
		}
	}
	t.Cleanup(closeFn)
	return d, closeFn
}

func readWhole(t *testing.T, c *Cache, o store.Object) []byte {
	t.Helper()
	r := c.Open("b", o)
	defer r.Close()
	got := make([]byte, o.Size)
	n, err := r.ReadAt(context.Background(), got, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return got[:n]
}

// TestDiskTier: a second cache over the same disk directory (a remount)
// reads with no GET; a replaced object is read anew, never from the old
// blocks; a memory cache smaller than the object is refilled from disk.
func TestDiskTier(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blocks")
	size := 10*testBlock + 77
	d, closeDisk := openDisk(t, dir)
	f, data, o := newDataFixture(t, Config{Disk: d, DataBytes: 3 * testBlock}, size)
	if got := readWhole(t, f.c, o); !bytes.Equal(got, data) {
		t.Fatal("first read differs")
	}
	gets := f.fault.Count(faultstore.OpReadAt)
	// Past the memory bound: the second pass comes from disk.
	waitBlocks(t, d, 11)
	if got := readWhole(t, f.c, o); !bytes.Equal(got, data) {
		t.Fatal("second read differs")
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != gets {
		t.Fatalf("second pass sent %d GETs", n-gets)
	}
	f.c.Close()
	closeDisk()

	// A remount: new memory, the same directory.
	d2, _ := openDisk(t, dir)
	c2 := New(f.fault, Config{Disk: d2, BlockSize: testBlock})
	defer c2.Close()
	if got := readWhole(t, c2, o); !bytes.Equal(got, data) {
		t.Fatal("read after remount differs")
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != gets {
		t.Fatalf("read after remount sent %d GETs", n-gets)
	}
	if s, _ := c2.DiskStats(); s.Hits != 11 || s.Misses != 0 {
		t.Fatalf("disk stats %+v", s)
	}

	// Replaced: other bytes under another ETag.
	data2 := randomBytes(size, 99)
	o2, err := f.mem.Put(context.Background(), "b", "obj", bytes.NewReader(data2), int64(size))
	if err != nil {
		t.Fatal(err)
	}
	o2.Size = int64(size)
	if o2.ETag == o.ETag {
		t.Fatal("memstore kept the ETag")
	}
	if got := readWhole(t, c2, o2); !bytes.Equal(got, data2) {
		t.Fatal("replaced object read with old bytes")
	}
	if n := f.fault.Count(faultstore.OpReadAt); n == gets {
		t.Fatal("replaced object read without a GET")
	}
}

func waitBlocks(t *testing.T, d *disk.Cache, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if d.Stats().Blocks >= n {
			return
		}
	}
	t.Fatalf("disk tier holds %d blocks, want %d", d.Stats().Blocks, n)
}

// TestDiskTierCorruptRefetched: a damaged block file is refetched, and the
// bytes read are the object's.
func TestDiskTierCorruptRefetched(t *testing.T) {
	dir := t.TempDir()
	d, closeDisk := openDisk(t, dir)
	f, data, o := newDataFixture(t, Config{Disk: d}, 4*testBlock)
	readWhole(t, f.c, o)
	waitBlocks(t, d, 4)
	f.c.Close()
	closeDisk()
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Name() != "lock" {
			// A file holds a run of blocks, each behind its header
			// page: a byte flipped in every page damages all of them.
			b, _ := os.ReadFile(p)
			for i := 0; i < len(b); i += 4096 {
				b[i] ^= 1
			}
			os.WriteFile(p, b, 0o600)
			n++
		}
		return nil
	})
	d2, _ := openDisk(t, dir)
	c2 := New(f.fault, Config{Disk: d2, BlockSize: testBlock})
	defer c2.Close()
	gets := f.fault.Count(faultstore.OpReadAt)
	if got := readWhole(t, c2, o); !bytes.Equal(got, data) {
		t.Fatal("read over corrupt block files differs")
	}
	if f.fault.Count(faultstore.OpReadAt) == gets {
		t.Fatal("corrupt blocks not fetched again")
	}
	// Each damaged file is dropped, with all its blocks, when its first
	// block is read.
	if s := d2.Stats(); s.Errors != int64(n) || s.Hits != 0 {
		t.Fatalf("disk stats %+v", s)
	}
}

// TestLanded: an uploaded file's bytes are in the disk tier under the new
// ETag: reading it back sends no GET.
func TestLanded(t *testing.T) {
	d, _ := openDisk(t, t.TempDir())
	f := newFixture(t, Config{Disk: d, BlockSize: testBlock}, nil)
	w, _ := f.c.Writer()
	data := randomBytes(3*testBlock+5, 7)
	o, err := w.PutIf(context.Background(), "b", "new.csv", bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Size = int64(len(data))
	f.c.Landed("b", "new.csv", o, bytes.NewReader(data))
	gets := f.fault.Count(faultstore.OpReadAt)
	st, err := f.c.statFile(context.Background(), "b", "new.csv")
	if err != nil {
		t.Fatal(err)
	}
	if got := readWhole(t, f.c, st); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != gets {
		t.Fatalf("reading back what was written sent %d GETs", n-gets)
	}
}

// TestDiskQueueHoldsBlock: the disk writers get a block by reference, so
// its buffer must not be reused for another block while it waits in the
// queue. A memory tier of two blocks evicts (and recycles) every buffer
// long before slow (fsync) writers get to it; every block on disk must
// still hold its own bytes (and -race sees a reuse as a data race).
// Reads ahead, GETs in flight and the queue are bounded to a few blocks
// each, so buffers must be reused however slow the machine is: unbounded,
// a busy machine had all 48 blocks in flight or queued at once, and
// nothing was reused.
func TestDiskQueueHoldsBlock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blocks")
	d, _, err := disk.Open(disk.Config{Dir: dir, Sync: true, QueueBytes: 8 * testBlock, PutWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	const blocks = 48
	f, data, o := newDataFixture(t, Config{Disk: d, DataBytes: 2 * testBlock, MaxInflightBytes: 4 * testBlock, MaxReadAhead: 4 * testBlock}, blocks*testBlock)
	if got := readWhole(t, f.c, o); !bytes.Equal(got, data) {
		t.Fatal("read differs")
	}
	waitBlocks(t, d, blocks)
	if s := d.Stats(); s.Dropped != 0 {
		t.Fatalf("%d blocks dropped: the test needs them all queued", s.Dropped)
	}
	t.Logf("%d buffers allocated for %d blocks", f.c.data.pool.allocated.Load(), blocks)
	if f.c.data.pool.allocated.Load() >= blocks {
		t.Fatalf("%d buffers allocated for %d blocks: no reuse to test", f.c.data.pool.allocated.Load(), blocks)
	}
	for i := range int64(blocks) {
		got, ok := d.Get(disk.Key{Bucket: "b", Object: "obj", ETag: o.ETag, BlockSize: testBlock, Index: i})
		if !ok {
			t.Fatalf("block %d not on disk", i)
		}
		if !bytes.Equal(got, data[i*testBlock:(i+1)*testBlock]) {
			t.Fatalf("block %d on disk holds other bytes: its buffer was reused while queued", i)
		}
	}
}

// TestDiskTierFirstReadPastStart: a read that has not earned whole blocks
// (the first READ of an open, at an offset past the start: the kernel
// sends READs in parallel, and under load one past the start can arrive
// first) fetches exactly the bytes asked for when no tier holds them; it
// must take them from the disk tier when that holds them, whether it got
// them from an upload (Landed) or from an earlier mount's reads.
func TestDiskTierFirstReadPastStart(t *testing.T) {
	size := 6*testBlock + 17
	for _, tc := range []struct {
		name string
		fill func(t *testing.T, f *fixture, d *disk.Cache, data []byte, o store.Object)
	}{
		{"landed", func(t *testing.T, f *fixture, d *disk.Cache, data []byte, o store.Object) {
			f.c.Landed("b", "obj", o, bytes.NewReader(data))
		}},
		{"read before", func(t *testing.T, f *fixture, d *disk.Cache, data []byte, o store.Object) {
			readWhole(t, f.c, o)
			waitBlocks(t, d, 7)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, closeDisk := openDisk(t, dir)
			f, data, o := newDataFixture(t, Config{Disk: d}, size)
			tc.fill(t, f, d, data, o)
			f.c.Close()
			closeDisk()

			d2, _ := openDisk(t, dir)
			c2 := New(f.fault, Config{Disk: d2, BlockSize: testBlock})
			defer c2.Close()
			gets := f.fault.Count(faultstore.OpReadAt)
			r := c2.Open("b", o)
			defer r.Close()
			for _, off := range []int64{3*testBlock + 4096, testBlock - 10, 6 * testBlock} {
				got := make([]byte, 4096)
				n, err := r.ReadAt(context.Background(), got, off)
				if err != nil && err != io.EOF {
					t.Fatal(err)
				}
				if want := data[off:min(off+4096, int64(size))]; !bytes.Equal(got[:n], want) {
					t.Fatalf("read at %d differs", off)
				}
			}
			if n := f.fault.Count(faultstore.OpReadAt); n != gets {
				t.Fatalf("reads past the start of an object the disk tier holds sent %d GETs", n-gets)
			}
		})
	}
}

// TestDiskQueueServes: a block queued for the disk and let go of by the
// memory tier is read from the queue, not fetched again, before its file
// is written. The tier here has no writers until the reads are done.
func TestDiskQueueServes(t *testing.T) {
	d, _, err := disk.Open(disk.Config{Dir: t.TempDir(), QueueBytes: 64 * testBlock, Paused: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	f, data, o := newDataFixture(t, Config{Disk: d, DataBytes: 2 * testBlock}, 8*testBlock)
	readWhole(t, f.c, o)
	gets := f.fault.Count(faultstore.OpReadAt)
	if got := readWhole(t, f.c, o); !bytes.Equal(got, data) {
		t.Fatal("second read differs")
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != gets {
		t.Fatalf("blocks waiting in the disk queue fetched again: %d GETs", n-gets)
	}
	if s := d.Stats(); s.Blocks != 0 || s.Hits < 6 {
		t.Fatalf("disk stats %+v: want the blocks served from the queue, none written yet", s)
	}
	d.Resume()
	waitBlocks(t, d, 8)
}

// TestDiskTierWindow: a sequential read whose blocks the disk tier holds
// reads ahead no further than diskWindow; the same read of blocks that
// must come from the store widens its window past it.
func TestDiskTierWindow(t *testing.T) {
	size := 64 * testBlock
	dir := t.TempDir()
	d, closeDisk := openDisk(t, dir)
	f, data, o := newDataFixture(t, Config{Disk: d}, size)
	readWhole(t, f.c, o)
	waitBlocks(t, d, 64)
	f.c.Close()
	closeDisk()

	cfg := Config{BlockSize: testBlock}
	tests := []struct {
		name   string
		disk   bool
		within bool // the window stays within diskWindow
	}{
		{"from disk", true, true},
		{"from the store", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.disk {
				d2, _ := openDisk(t, dir)
				c.Disk = d2
			}
			c2 := New(f.fault, c)
			defer c2.Close()
			r := c2.Open("b", o)
			defer r.Close()
			var widest int64
			buf := make([]byte, testBlock)
			for off := int64(0); off < int64(size); off += testBlock {
				n, err := r.ReadAt(context.Background(), buf, off)
				if err != nil && err != io.EOF {
					t.Fatal(err)
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Fatalf("read at %d differs", off)
				}
				r.mu.Lock()
				widest = max(widest, r.window)
				r.mu.Unlock()
			}
			limit := diskWindow(c2.cfg)
			if within := widest <= limit; within != tc.within {
				t.Errorf("widest window %d, diskWindow %d: within is %v, want %v", widest, limit, within, tc.within)
			}
		})
	}
}
