package fusefs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store/memstore"
)

// A file node counts itself once, and uncounts itself when forgotten.
func TestFileInodeCount(t *testing.T) {
	f := New(nil, Config{Bucket: "b"}).(*dirNode).fs
	n := &fileNode{fs: f}
	n.counted.Store(true)
	f.plus.Hold(1)
	n.OnForget()
	n.OnForget() // a spurious second forget changes nothing
	if got, _ := f.plus.Stats(); got != 0 {
		t.Errorf("file inodes after forget = %d, want 0", got)
	}
	if f.cfg.PlusFiles != DefaultPlusFiles {
		t.Errorf("PlusFiles default = %d", f.cfg.PlusFiles)
	}
}

func init() {
	scenarios["plus"] = scenario{plusFiles: 10, seed: func(ctx context.Context, mem *memstore.Store) error {
		if err := mem.CreateBucket(ctx, "plus"); err != nil {
			return err
		}
		for i := range 60 {
			v := strings.Repeat("x", i)
			if _, err := mem.Put(ctx, "plus", fmt.Sprintf("many/f%02d", i), strings.NewReader(v), int64(i)); err != nil {
				return err
			}
		}
		_, err := mem.Put(ctx, "plus", "many/sub/inner", strings.NewReader("i"), 1)
		return err
	}}
}

// Past PlusFiles, a directory read passes files as names only: find still
// sees every name with its type, and stat and ls -l (a LOOKUP each) every
// size.
func TestMountNamesOnlyPastPlusFiles(t *testing.T) {
	c := mountScenario(t, "plus")
	dir := filepath.Join(c.mp, "plus", "many")
	for round := range 2 { // the second read finds the kernel holding the inodes
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 61 {
			t.Fatalf("round %d: %d entries, want 61", round, len(es))
		}
		for _, e := range es {
			info, err := e.Info()
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, e.Name(), err)
			}
			if e.Name() == "sub" {
				if !e.IsDir() || !info.IsDir() {
					t.Errorf("sub is not a directory: %v", info.Mode())
				}
				continue
			}
			var i int
			fmt.Sscanf(e.Name(), "f%02d", &i)
			if e.IsDir() || !info.Mode().IsRegular() || info.Size() != int64(i) {
				t.Errorf("round %d: %s: mode %v size %d, want a file of %d bytes", round, e.Name(), info.Mode(), info.Size(), i)
			}
		}
	}
	out, err := exec.Command("find", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "\n"); n != 63 {
		t.Errorf("find printed %d lines, want 63", n)
	}
}

// Past PlusFiles the kernel is asked to forget the files it was given least
// recently, and does: the daemon's file inodes go down to the bound, the
// files stat'ed last stay in the kernel's caches (a stat again sends no
// LOOKUP), a file kept open stays, and a forgotten name still reads (LOOKUP
// again).
func TestMountForgetsPastPlusFiles(t *testing.T) {
	c := mountScenario(t, "plus")
	dir := filepath.Join(c.mp, "plus", "many")
	stat := func(i int) {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	held, err := os.Open(filepath.Join(dir, "f00"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// Some hosts drop the kernel's caches every few seconds, which makes
	// it forget every unused inode: an attempt that saw a drop says
	// nothing, and is made again.
	for attempt := 0; ; attempt++ {
		drops := slabDrops()
		for i := range 60 {
			stat(i)
		}
		n, _ := c.inodes(t)
		for deadline := time.Now().Add(time.Second); n > 10 && time.Now().Before(deadline); n, _ = c.inodes(t) {
			time.Sleep(10 * time.Millisecond)
		}
		_, lookupAt := c.inodes(t)
		for i := 55; i < 60; i++ {
			stat(i)
		}
		_, again := c.inodes(t)
		if slabDrops() != drops && attempt < 10 {
			continue
		}
		if n > 10 {
			t.Fatalf("the kernel holds %d file inodes after 60 stats, want at most the bound of 10", n)
		}
		if again != lookupAt {
			t.Errorf("a stat of the files stat'ed last looked them up again: they were forgotten")
		}
		break
	}
	for _, i := range []int{1, 30, 59} {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)))
		if err != nil || len(data) != i {
			t.Errorf("f%02d after forgetting: %d bytes, %v; want %d", i, len(data), err, i)
		}
	}
	if _, err := held.Stat(); err != nil {
		t.Errorf("the open file: %v", err)
	}
}

// slabDrops returns how many times the kernel's caches were dropped
// (echo 2 > /proc/sys/vm/drop_caches), -1 if it cannot say.
func slabDrops() int64 {
	data, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		var n int64
		if _, err := fmt.Sscanf(l, "drop_slab %d", &n); err == nil {
			return n
		}
	}
	return -1
}
