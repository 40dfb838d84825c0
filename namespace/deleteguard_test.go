package namespace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store/faultstore"
)

// TestOwnedSet: the registry of what the mount wrote answers by bucket,
// key and ETag, and forgets the oldest entry when full.
func TestOwnedSet(t *testing.T) {
	type op struct {
		do                string // "add", "forget"
		bucket, key, etag string
	}
	type check struct {
		bucket, key, etag string
		has, known        bool
	}
	add := func(b, k, e string) op { return op{"add", b, k, e} }
	forget := func(b, k string) op { return op{"forget", b, k, ""} }
	tests := []struct {
		name    string
		max     int
		ops     []op
		checks  []check
		wantLen int
	}{
		{name: "empty", max: 4,
			checks: []check{{"b", "k", "e", false, false}}},
		{name: "added, same ETag", max: 4, ops: []op{add("b", "k", "e1")}, wantLen: 1,
			checks: []check{{"b", "k", "e1", true, true}}},
		{name: "replaced since: another ETag", max: 4, ops: []op{add("b", "k", "e1")}, wantLen: 1,
			checks: []check{{"b", "k", "e2", false, true}, {"b", "k", "", false, true}}},
		{name: "other bucket, other key", max: 4, ops: []op{add("b", "k", "e1")}, wantLen: 1,
			checks: []check{{"c", "k", "e1", false, false}, {"b", "k2", "e1", false, false}, {"b", "k/", "e1", false, false}}},
		{name: "bucket and key do not run together", max: 4, ops: []op{add("ab", "c", "e")}, wantLen: 1,
			checks: []check{{"a", "bc", "e", false, false}}},
		{name: "written again: the new ETag counts", max: 4, ops: []op{add("b", "k", "e1"), add("b", "k", "e2")}, wantLen: 1,
			checks: []check{{"b", "k", "e2", true, true}, {"b", "k", "e1", false, true}}},
		{name: "forgotten", max: 4, ops: []op{add("b", "k", "e1"), forget("b", "k")}, wantLen: 0,
			checks: []check{{"b", "k", "e1", false, false}}},
		{name: "full: the oldest goes", max: 3,
			ops: []op{add("b", "1", "e"), add("b", "2", "e"), add("b", "3", "e"), add("b", "4", "e")}, wantLen: 3,
			checks: []check{{"b", "1", "e", false, false}, {"b", "2", "e", true, true}, {"b", "4", "e", true, true}}},
		{name: "written again is young again", max: 3,
			ops: []op{add("b", "1", "e"), add("b", "2", "e"), add("b", "1", "f"), add("b", "3", "e"), add("b", "4", "e")}, wantLen: 3,
			checks: []check{{"b", "1", "f", true, true}, {"b", "2", "e", false, false}, {"b", "3", "e", true, true}, {"b", "4", "e", true, true}}},
		{name: "forgotten and added again keeps its new place", max: 2,
			ops: []op{add("b", "1", "e"), forget("b", "1"), add("b", "2", "e"), add("b", "1", "e"), add("b", "3", "e")}, wantLen: 2,
			checks: []check{{"b", "1", "e", true, true}, {"b", "2", "e", false, false}, {"b", "3", "e", true, true}}},
		{name: "size one", max: 1,
			ops: []op{add("b", "1", "e"), add("b", "2", "e")}, wantLen: 1,
			checks: []check{{"b", "1", "e", false, false}, {"b", "2", "e", true, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s ownedSet
			s.init(tc.max)
			for _, o := range tc.ops {
				switch o.do {
				case "add":
					s.add("", o.bucket, o.key, o.etag)
				case "forget":
					s.forget("", o.bucket, o.key)
				}
			}
			for _, c := range tc.checks {
				if got := s.has("", c.bucket, c.key, c.etag); got != c.has {
					t.Errorf("has(%q, %q, %q) = %v, want %v", c.bucket, c.key, c.etag, got, c.has)
				}
				if got := s.known("", c.bucket, c.key); got != c.known {
					t.Errorf("known(%q, %q) = %v, want %v", c.bucket, c.key, got, c.known)
				}
			}
			if got := s.len(); got != tc.wantLen {
				t.Errorf("len = %d, want %d", got, tc.wantLen)
			}
		})
	}
}

// TestOwnedSetBounded: however much is written, at most max entries are
// kept, and they are the newest.
func TestOwnedSetBounded(t *testing.T) {
	const max = 1000
	var s ownedSet
	s.init(max)
	for i := range 10 * max {
		s.add("", "b", fmt.Sprintf("k%d", i), "e")
		if i%7 == 0 {
			s.add("", "b", fmt.Sprintf("k%d", i/2), "e") // some written again
		}
		if n := s.len(); n > max {
			t.Fatalf("after %d adds: %d entries, more than %d", i+1, n, max)
		}
	}
	if len(s.ring) != max {
		t.Errorf("ring has %d slots, want %d", len(s.ring), max)
	}
	for i := 10*max - 800; i < 10*max; i++ {
		if !s.has("", "b", fmt.Sprintf("k%d", i), "e") {
			t.Fatalf("k%d (among the newest) forgotten", i)
		}
	}
	if s.known("", "b", "k0") {
		t.Errorf("k0, the oldest, still known")
	}
}

// TestDeleteGuard: what the guard allows with and without --allow-delete,
// and that it logs the hint once however many deletes it refuses.
func TestDeleteGuard(t *testing.T) {
	tests := []struct {
		name   string
		allow  bool
		wrote  [][3]string // bucket, key, etag
		remove [][2]string
		check  [3]string
		want   bool
	}{
		{name: "existing object", check: [3]string{"b", "data.csv", "e"}, want: false},
		{name: "written here", wrote: [][3]string{{"b", "out.csv", "e1"}}, check: [3]string{"b", "out.csv", "e1"}, want: true},
		{name: "written here, replaced since", wrote: [][3]string{{"b", "out.csv", "e1"}}, check: [3]string{"b", "out.csv", "e9"}, want: false},
		{name: "written here, deleted, written by another", wrote: [][3]string{{"b", "out.csv", "e1"}}, remove: [][2]string{{"b", "out.csv"}},
			check: [3]string{"b", "out.csv", "e1"}, want: false},
		{name: "no ETag from the server", wrote: [][3]string{{"b", "out.csv", ""}}, check: [3]string{"b", "out.csv", ""}, want: false},
		{name: "allow-delete: existing object", allow: true, check: [3]string{"b", "data.csv", "e"}, want: true},
		{name: "allow-delete: anything", allow: true, wrote: [][3]string{{"b", "out.csv", "e1"}}, check: [3]string{"b", "out.csv", "e9"}, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newDeleteGuard(tc.allow, 10, slog.New(slog.DiscardHandler))
			for _, w := range tc.wrote {
				g.wrote("", w[0], w[1], w[2])
			}
			for _, r := range tc.remove {
				g.removed("", r[0], r[1])
			}
			if got := g.mayDelete("", tc.check[0], tc.check[1], tc.check[2]); got != tc.want {
				t.Errorf("mayDelete = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("hint logged once", func(t *testing.T) {
		var buf bytes.Buffer
		g := newDeleteGuard(false, 10, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
		for i := range 50 {
			g.refuse("unlink", "b", fmt.Sprintf("k%d", i), "not written by this mount")
		}
		out := buf.String()
		if n := strings.Count(out, "\n"); n != 1 {
			t.Fatalf("%d lines logged for 50 refusals, want 1:\n%s", n, out)
		}
		for _, want := range []string{"level=WARN", "--allow-delete", "allow_delete", "key=k0"} {
			if !strings.Contains(out, want) {
				t.Errorf("hint %q lacks %q", out, want)
			}
		}
		if g.refused.Load() != 50 {
			t.Errorf("refused = %d, want 50", g.refused.Load())
		}
	})
}

// TestGuardedNamespace: with the guard on, the namespace deletes (unlink,
// rmdir of a marker, the delete half of a rename) only what it wrote, and
// sends no request for the refused ones.
func TestGuardedNamespace(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		do     func(e *env) error
		err    error
		stored map[string]string // key -> content ("-": absent)
	}{
		{"unlink an existing object", func(e *env) error { return e.root().Unlink(ctx, "file.txt") },
			ErrNotPermitted, map[string]string{"file.txt": "hello\n"}},
		{"rmdir an existing marker", func(e *env) error { return e.root().Rmdir(ctx, "empty") },
			ErrNotPermitted, map[string]string{"empty/": ""}},
		{"rename an existing file", func(e *env) error {
			_, err := e.root().Rename(ctx, "file.txt", e.root(), "moved", false, Entry{})
			return err
		}, ErrNotPermitted, map[string]string{"file.txt": "hello\n", "moved": "-"}},
		{"rename an existing directory", func(e *env) error {
			_, err := e.root().Rename(ctx, "dir", e.root(), "dir2", false, Entry{})
			return err
		}, ErrNotPermitted, map[string]string{"dir/a.txt": "a", "dir2/a.txt": "-"}},
		{"own file: written, renamed, removed", func(e *env) error {
			if err := writeFile(t, e.root(), "mine.txt", "m"); err != nil {
				return err
			}
			if _, err := e.root().Rename(ctx, "mine.txt", e.root(), "mine2.txt", false, Entry{}); err != nil {
				return err
			}
			return e.root().Unlink(ctx, "mine2.txt")
		}, nil, map[string]string{"mine.txt": "-", "mine2.txt": "-"}},
		{"own directory: made, renamed with a file, removed", func(e *env) error {
			d, err := e.root().Mkdir(ctx, "made")
			if err != nil {
				return err
			}
			if err := writeFile(t, d, "f", "f"); err != nil {
				return err
			}
			if _, err := e.root().Rename(ctx, "made", e.root(), "made2", false, Entry{}); err != nil {
				return err
			}
			if err := e.ns.Dir(bkt, "made2/").Unlink(ctx, "f"); err != nil {
				return err
			}
			return e.root().Rmdir(ctx, "made2")
		}, nil, map[string]string{"made/": "-", "made2/": "-", "made2/f": "-"}},
		{"own file replaced by another writer since", func(e *env) error {
			if err := writeFile(t, e.root(), "mine.txt", "m"); err != nil {
				return err
			}
			e.mem.Put(ctx, bkt, "mine.txt", strings.NewReader("theirs"), 6)
			return e.root().Unlink(ctx, "mine.txt")
		}, ErrNotPermitted, map[string]string{"mine.txt": "theirs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGuardedEnv(t, true, true)
			if err := tt.do(e); !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			e.check(t, tt.stored, nil)
			if tt.err != nil && e.fault.Count(faultstore.OpDelete)+e.fault.Count(faultstore.OpCopy) != 0 {
				t.Errorf("a refused delete sent %d DeleteObject and %d CopyObject", e.fault.Count(faultstore.OpDelete), e.fault.Count(faultstore.OpCopy))
			}
		})
	}
}
