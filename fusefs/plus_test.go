package fusefs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store/memstore"
)

// Directory reads give files' attributes while the kernel holds fewer file
// inodes than PlusFiles, and past it only while files are being looked up
// by name (ls -l of names passed without attributes).
func TestPlusFile(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := New(nil, Config{Bucket: "b", PlusFiles: 3, Now: clock}).(*dirNode).fs
	lookup := func() { f.fileLookupAt.Store(clock().UnixNano()) }
	steps := []struct {
		name   string
		do     func()
		inodes int64
		want   bool
	}{
		{"below the bound", func() {}, 2, true},
		{"at the bound, no one stats", func() {}, 3, false},
		{"a file looked up by name", lookup, 3, true},
		{"still within the window", func() { advance(statWindow / 2) }, 5, true},
		{"the window passed", func() { advance(statWindow) }, 5, false},
		{"the kernel forgot inodes", func() {}, 1, true},
	}
	for _, s := range steps {
		s.do()
		f.fileInodes.Store(s.inodes)
		if got := f.plusFile(); got != s.want {
			t.Errorf("%s: plusFile = %v, want %v", s.name, got, s.want)
		}
	}
}

// A file node counts itself once, and uncounts itself when forgotten.
func TestFileInodeCount(t *testing.T) {
	f := New(nil, Config{Bucket: "b"}).(*dirNode).fs
	n := &fileNode{fs: f}
	n.counted.Store(true)
	f.fileInodes.Add(1)
	n.OnForget()
	n.OnForget() // a spurious second forget changes nothing
	if got := f.fileInodes.Load(); got != 0 {
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
