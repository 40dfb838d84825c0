package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// TestOwnWrites: after the mount's own changes through the cache's Writer,
// listings and lookups answer from the cache, with the change, and without
// a request.
func TestOwnWrites(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, Config{}, map[string]string{"d/a": "1", "d/b": "22", "d/sub/x": "x", "top": "t"})
	c := fx.c
	w, ok := c.Writer()
	if !ok {
		t.Fatal("no writer over a writable store")
	}
	if c.Keeps(w) != w {
		t.Error("Keeps wrapped the cache's own writer again")
	}
	readAll(t, c, "b", "")
	readAll(t, c, "b", "d/")
	put := func(key, data string, opts store.PutOptions) error {
		_, err := w.PutIf(ctx, "b", key, bytes.NewReader([]byte(data)), int64(len(data)), opts)
		return err
	}
	steps := []struct {
		name   string
		change func() error
		prefix string
		want   string
		asks   bool // the listing after it asks the server (the cache cannot know)
	}{
		{"new file", func() error { return put("d/c", "ccc", store.PutOptions{}) }, "d/", "[a(1) b(2) c(3) sub/]", false},
		{"overwrite", func() error { return put("d/a", "123456789", store.PutOptions{}) }, "d/", "[a(9) b(2) c(3) sub/]", false},
		{"delete", func() error { return w.Delete(ctx, "b", "d/b") }, "d/", "[a(9) c(3) sub/]", false},
		{"mkdir", func() error { return put("d/new/", "", store.PutOptions{IfAbsent: true}) }, "d/", "[a(9) c(3) new/ sub/]", false},
		{"new dir is empty", func() error { return nil }, "d/new/", "[]", false},
		{"multipart upload in new dir", func() error {
			up, err := w.StartUpload(ctx, "b", "d/new/f")
			if err != nil {
				return err
			}
			if err := up.PutPart(ctx, 1, bytes.NewReader([]byte("f")), 1); err != nil {
				return err
			}
			_, err = up.Complete(ctx, 1, store.PutOptions{})
			return err
		}, "d/new/", "[f(1)]", false},
		{"copy", func() error { _, err := w.Copy(ctx, "b", "d/c", "", "d/new/g"); return err }, "d/new/", "[f(1) g(3)]", false},
		{"rmdir", func() error {
			for _, k := range []string{"d/new/f", "d/new/g", "d/new/"} {
				if err := w.Delete(ctx, "b", k); err != nil {
					return err
				}
			}
			return nil
		}, "d/", "[a(9) c(3) sub/]", true}, // whether d/new held only the marker
		{"refused conditional create forgets the key", func() error {
			if err := put("d/c", "x", store.PutOptions{IfAbsent: true}); !errors.Is(err, store.ErrExists) {
				return fmt.Errorf("conditional create over d/c: %v, want ErrExists", err)
			}
			return nil
		}, "d/", "[a(9) c(3) sub/]", true},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		before := fx.counts()
		if got := fmt.Sprint(entryNames(readAll(t, c, "b", st.prefix))); got != st.want {
			t.Errorf("%s: ls %s = %s, want %s", st.name, st.prefix, got, st.want)
		}
		if after := fx.counts(); (fmt.Sprint(after) != fmt.Sprint(before)) != st.asks {
			t.Errorf("%s: listing requests %v -> %v, want asking the server: %v", st.name, before, after, st.asks)
		}
	}
	n, err := c.Lookup(ctx, "b", "d/a")
	if err != nil || n.Object.Size != 9 || n.Object.ModTime.IsZero() {
		t.Errorf("Lookup(d/a) = %+v, %v", n, err)
	}
	if _, err := c.Lookup(ctx, "b", "d/b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup of a deleted file = %v, want ErrNotFound", err)
	}
}

// TestRemovedLastFile: deleting the last file of a directory without a
// marker makes it vanish on S3; the cache then asks again.
func TestRemovedLastFile(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, Config{}, map[string]string{"only/f": "1", "g": "2"})
	readAll(t, fx.c, "b", "")
	readAll(t, fx.c, "b", "only/")
	w, _ := fx.c.Writer()
	w.Delete(ctx, "b", "only/f")
	if got := fmt.Sprint(entryNames(readAll(t, fx.c, "b", ""))); got != "[g(1)]" {
		t.Errorf("root after the last file of only/ went = %s, want [g(1)]", got)
	}
}

// A change of a whole tree through the writer (Keeper.Tree) leaves the
// cache asking the server about the tree and the listing holding it,
// whether the change worked or not, and passes its error on.
func TestKeeperTree(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func() error
		err  error
	}{
		{"no writes", nil, nil},
		{"the change worked", func() error { return nil }, nil},
		{"the change failed", func() error { return store.ErrAccessDenied }, store.ErrAccessDenied},
	} {
		fx := newFixture(t, Config{}, map[string]string{"d/a": "1", "d/s/b": "2", "dx": "3"})
		readAll(t, fx.c, "b", "")
		readAll(t, fx.c, "b", "d/")
		readAll(t, fx.c, "b", "d/s/")
		w, _ := fx.c.Writer()
		if err := w.(*Keeper).Tree("b", tc.op, "d"); !errors.Is(err, tc.err) {
			t.Errorf("%s: Tree = %v, want %v", tc.name, err, tc.err)
		}
		before := fx.counts()["List"]
		readAll(t, fx.c, "b", "d/s/")
		readAll(t, fx.c, "b", "")
		if got := fx.counts()["List"] - before; got != 2 {
			t.Errorf("%s: %d LISTs after Tree, want 2 (both listings forgotten)", tc.name, got)
		}
	}
}
