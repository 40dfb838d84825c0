package fusefs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// The "changing-read" scenario: GETs of d/f.bin wait while the gate file
// (the mount point plus ".gate") exists, then fail as S3 fails a GET of a
// version that was replaced. HEAD gives times to the second, as S3's
// Last-Modified header does, and listings finer ones, as S3's XML does.
func init() {
	scenarios["changing-read"] = scenario{
		seed: func(ctx context.Context, mem *memstore.Store) error {
			if err := mem.CreateBucket(ctx, "bkt"); err != nil {
				return err
			}
			if _, err := mem.Put(ctx, "bkt", "d/a", strings.NewReader("a"), 1); err != nil {
				return err
			}
			_, err := mem.Put(ctx, "bkt", "d/f.bin", strings.NewReader(strings.Repeat("x", 4<<20)), 4<<20)
			return err
		},
		// Pages of one key: the lookup of d lists "a" only, so the
		// lookup of d/f.bin sends HEAD.
		cache: cache.Config{ListPageSize: 1},
		wrap: func(mem *memstore.Store) store.ObjectStore {
			gate := os.Getenv(serveEnv) + ".gate"
			fs := faultstore.New(secondsHead{mem})
			fs.SetHook(func(ctx context.Context, op, bucket, key string) error {
				if op != faultstore.OpReadAt || key != "d/f.bin" {
					return nil
				}
				for {
					if _, err := os.Stat(gate); err != nil {
						return fmt.Errorf("get %s: %w", key, store.ErrChanged)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(20 * time.Millisecond):
					}
				}
			})
			return fs
		},
	}
}

// secondsHead is a store whose HEAD gives modification times to the second.
type secondsHead struct{ *memstore.Store }

func (s secondsHead) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	o, err := s.Store.Stat(ctx, bucket, key)
	o.ModTime = o.ModTime.Truncate(time.Second)
	return o, err
}

// A read that finds its object replaced while "ls -l" of its directory
// runs: the listing gives the inode other attributes (a finer time), so
// the kernel, holding the directory's lock, drops the inode's pages and
// waits for the read in flight; the read must answer without waiting for
// that directory (it invalidates the name afterwards). Both end.
func TestReadChangedDuringListing(t *testing.T) {
	c := mountScenario(t, "changing-read")
	gate := c.mp + ".gate"
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(gate)
	file := filepath.Join(c.mp, "bkt", "d", "f.bin")
	if _, err := os.Stat(file); err != nil { // HEAD: a time to the second
		t.Fatal(err)
	}
	cat := exec.Command("cat", file)
	cat.Stdout = io.Discard
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the read waits at the gate
	ls := exec.Command("ls", "-l", filepath.Join(c.mp, "bkt", "d"))
	ls.Stdout = io.Discard
	if err := ls.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // ls waits for the read's pages
	os.Remove(gate)                    // the read fails: the object changed
	for _, p := range []*exec.Cmd{cat, ls} {
		if err := waitExit(p, 10*time.Second); err != nil {
			stacks := ""
			for _, q := range []*exec.Cmd{cat, ls} {
				s, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", q.Process.Pid))
				stacks += fmt.Sprintf("%s:\n%s\n", q.Path, s)
			}
			c.cmd.Process.Signal(syscall.SIGQUIT) // the daemon's goroutines, to its log
			time.Sleep(time.Second)
			abortMount(t, c.mp)
			t.Fatalf("%s still blocked 10s after the read failed:\n%s", p.Path, stacks)
		}
	}
	if cat.ProcessState.ExitCode() == 0 {
		t.Error("cat of a replaced object succeeded")
	}
	if !c.alive() {
		t.Error("the mount died")
	}
	if ls.ProcessState.ExitCode() != 0 {
		t.Errorf("ls -l: %v", ls.ProcessState)
	}
}

// abortMount aborts the FUSE connection of the mount at mp, freeing every
// process blocked on it, as "bucketfs unmount --force" does.
func abortMount(t *testing.T, mp string) {
	out, err := exec.Command(bucketfsBinary(t), "unmount", "--force", mp).CombinedOutput()
	if err != nil {
		t.Logf("unmount --force: %v: %s", err, out)
	}
}
