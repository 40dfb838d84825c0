package fusefs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/memstore"
)

func init() {
	scenarios["panic"] = scenario{
		seed: func(ctx context.Context, mem *memstore.Store) error {
			if err := mem.CreateBucket(ctx, "pnc"); err != nil {
				return err
			}
			for _, k := range []string{"ok.txt", "boom/x.txt"} {
				if _, err := mem.Put(ctx, "pnc", k, strings.NewReader("fine"), 4); err != nil {
					return err
				}
			}
			return nil
		},
		wrap: func(mem *memstore.Store) store.ObjectStore { return panicStore{mem} },
	}
}

// panicStore panics when a directory listing of "boom/" is asked for: a
// stand-in for any bug in the request path. (Only the page requests of a
// readdir, which run in the request's own goroutine; the one-key probes of
// a lookup run detached in the cache.)
type panicStore struct{ *memstore.Store }

func (p panicStore) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	if in.Prefix == "boom/" && in.MaxKeys != 1 {
		panic("injected panic listing boom/")
	}
	return p.Store.List(ctx, in)
}

// TestPanicContained: a request that panics fails with EIO, is logged (with
// its stack the first time), and the mount keeps serving.
func TestPanicContained(t *testing.T) {
	c := mountScenario(t, "panic")
	p := filepath.Join(c.mp, "pnc")
	// List the bucket first: then "boom" is known from the listing and its
	// lookup costs no probe.
	if ents, err := os.ReadDir(p); err != nil || len(ents) != 2 {
		t.Fatalf("ls pnc = %v, %v", ents, err)
	}
	for i := 0; i < 3; i++ {
		if _, err := os.ReadDir(filepath.Join(p, "boom")); !errors.Is(err, syscall.EIO) {
			t.Errorf("ls pnc/boom (%d) err = %v, want EIO", i, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(p, "ok.txt")); err != nil || string(b) != "fine" {
		t.Errorf("read after the panics = %q, %v", b, err)
	}
	if !c.alive() {
		t.Fatal("the serving process died")
	}

	var panics, stacks int
	for _, rec := range c.logLines(t) {
		if !strings.HasPrefix(rec["msg"].(string), "panic in request") {
			continue
		}
		panics++
		if rec["op"] != "readdir" || !strings.Contains(rec["panic"].(string), "injected panic") {
			t.Errorf("panic logged as %v", rec)
		}
		if s, ok := rec["stack"].(string); ok {
			stacks++
			if !strings.Contains(s, "panicStore") {
				t.Errorf("logged stack does not show the panicking frame:\n%s", s)
			}
		}
	}
	if panics != 3 || stacks != 1 {
		t.Errorf("logged %d panics with %d stacks, want 3 with 1", panics, stacks)
	}
}
