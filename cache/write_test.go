package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

func entryNames(es []DirEntry) []string {
	var out []string
	for _, e := range es {
		n := e.Name
		if e.Kind.Has(KindDir) {
			n += "/"
		}
		if e.Kind.Has(KindFile) {
			n += fmt.Sprintf("(%d)", e.Object.Size)
		}
		out = append(out, n)
	}
	return out
}

// TestOwnWrites: after the mount's own changes, listings and lookups answer
// from the cache, with the change, and without a request.
func TestOwnWrites(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, Config{}, map[string]string{"d/a": "1", "d/b": "22", "d/sub/x": "x", "top": "t"})
	c := fx.c
	readAll(t, c, "b", "")
	readAll(t, c, "b", "d/")
	steps := []struct {
		name   string
		change func()
		prefix string
		want   string
	}{
		{"new file", func() { c.Wrote("b", store.Object{Key: "d/c", Size: 3, ETag: "e1"}) }, "d/", "[a(1) b(2) c(3) sub/]"},
		{"overwrite", func() { c.Wrote("b", store.Object{Key: "d/a", Size: 9, ETag: "e2"}) }, "d/", "[a(9) b(2) c(3) sub/]"},
		{"delete", func() { c.Removed("b", "d/b") }, "d/", "[a(9) c(3) sub/]"},
		{"mkdir", func() { c.MadeDir("b", "d/new") }, "d/", "[a(9) c(3) new/ sub/]"},
		{"new dir is empty", func() {}, "d/new/", "[]"},
		{"file in new dir", func() { c.Wrote("b", store.Object{Key: "d/new/f", Size: 1, ETag: "e3"}) }, "d/new/", "[f(1)]"},
		// The store never had these changes: the cache alone answers.
		{"rmdir", func() { c.RemovedDir("b", "d/new") }, "d/", "[a(9) c(3) sub/]"},
	}
	for _, st := range steps {
		st.change()
		before := fx.counts()
		if got := fmt.Sprint(entryNames(readAll(t, c, "b", st.prefix))); got != st.want {
			t.Errorf("%s: ls %s = %s, want %s", st.name, st.prefix, got, st.want)
		}
		if after := fx.counts(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s: listing cost requests: %v -> %v", st.name, before, after)
		}
	}
	n, err := c.Lookup(ctx, "b", "d/a")
	if err != nil || n.Object.Size != 9 || n.Object.ETag != "e2" || n.Object.ModTime.IsZero() {
		t.Errorf("Lookup(d/a) = %+v, %v", n, err)
	}
	if _, err := c.Lookup(ctx, "b", "d/b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup of a deleted file = %v, want ErrNotFound", err)
	}
	if _, err := c.StatFile(ctx, "b", "d/b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("StatFile of a deleted file = %v, want ErrNotFound", err)
	}
}

// TestRemovedLastFile: deleting the last file of a directory without a
// marker makes it vanish on S3; the cache then asks again.
func TestRemovedLastFile(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, Config{}, map[string]string{"only/f": "1", "g": "2"})
	readAll(t, fx.c, "b", "")
	readAll(t, fx.c, "b", "only/")
	fx.mem.Delete(ctx, "b", "only/f")
	fx.c.Removed("b", "only/f")
	if got := fmt.Sprint(entryNames(readAll(t, fx.c, "b", ""))); got != "[g(1)]" {
		t.Errorf("root after the last file of only/ went = %s, want [g(1)]", got)
	}
}

func TestForgetTree(t *testing.T) {
	fx := newFixture(t, Config{}, map[string]string{"d/a": "1", "d/s/b": "2", "dx": "3"})
	readAll(t, fx.c, "b", "")
	readAll(t, fx.c, "b", "d/")
	readAll(t, fx.c, "b", "d/s/")
	fx.c.ForgetTree("b", "d")
	before := fx.counts()["List"]
	readAll(t, fx.c, "b", "d/s/")
	readAll(t, fx.c, "b", "")
	if got := fx.counts()["List"] - before; got != 2 {
		t.Errorf("%d LISTs after ForgetTree, want 2 (both listings forgotten)", got)
	}
}

func TestListTree(t *testing.T) {
	keys := map[string]string{}
	for i := range 25 {
		keys[fmt.Sprintf("t/%02d/f", i)] = "x"
	}
	fx := newFixture(t, Config{}, keys)
	tests := []struct {
		max      int
		wantN    int
		wantMore bool
	}{{10, 10, true}, {25, 25, false}, {100, 25, false}}
	for _, tc := range tests {
		objs, more, err := fx.c.ListTree(context.Background(), "b", "t/", tc.max)
		if err != nil || len(objs) != tc.wantN || more != tc.wantMore {
			t.Errorf("ListTree(max %d) = %d objects, more %v, %v; want %d, %v", tc.max, len(objs), more, err, tc.wantN, tc.wantMore)
		}
	}
}

func TestFetch(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (fetchChunk*2+4096)/16)
	fx := newFixture(t, Config{}, map[string]string{"big": string(data), "empty": ""})
	for _, key := range []string{"big", "empty"} {
		obj, err := fx.c.StatFile(context.Background(), "b", key)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(t.TempDir(), key))
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.c.Fetch(context.Background(), "b", obj, f); err != nil {
			t.Fatalf("Fetch(%s): %v", key, err)
		}
		f.Close()
		got, _ := os.ReadFile(f.Name())
		want := data
		if key == "empty" {
			want = nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Fetch(%s): %d bytes differ from %d", key, len(got), len(want))
		}
	}
	obj, _ := fx.c.StatFile(context.Background(), "b", "big")
	fx.mem.Put(context.Background(), "b", "big", bytes.NewReader([]byte("new")), 3)
	f, _ := os.Create(filepath.Join(t.TempDir(), "changed"))
	defer f.Close()
	if err := fx.c.Fetch(context.Background(), "b", obj, f); !errors.Is(err, store.ErrChanged) {
		t.Errorf("Fetch of a replaced object = %v, want ErrChanged", err)
	}
}
