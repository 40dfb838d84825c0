package namespace

// The namespace over the in-memory store, behind the fault-injecting one:
// every operation and every failure, without /dev/fuse.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

const bkt = "b"

var seed = map[string]string{
	"file.txt":      "hello\n",
	"dir/a.txt":     "a",
	"dir/sub/b.txt": "b",
	"both":          "shadowed",
	"both/in.txt":   "in",
	"empty/":        "",
	"full/":         "",
	"full/f":        "f",
}

// env is one namespace over a faultstore over a memstore, with a fake
// clock and a small staging area.
type env struct {
	t     *testing.T
	ns    *NS
	mem   *memstore.Store
	fault *faultstore.Store
	c     *cache.Cache
	area  *stage.Area

	mu   sync.Mutex
	now  time.Time
	fail map[string]fault // op + " " + key -> what to fail with
}

// fault is an injected error, for the next n calls (n < 0: every call).
type fault struct {
	err error
	n   int
}

func newEnv(t *testing.T, writable bool) *env { return newGuardedEnv(t, writable, false) }

func newGuardedEnv(t *testing.T, writable, guarded bool) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), fail: map[string]fault{}}
	e.mem = memstore.New(memstore.WithClock(e.clock))
	if err := e.mem.CreateBucket(ctx, bkt); err != nil {
		t.Fatal(err)
	}
	for k, v := range seed {
		if _, err := e.mem.Put(ctx, bkt, k, strings.NewReader(v), int64(len(v))); err != nil {
			t.Fatal(err)
		}
	}
	e.fault = faultstore.New(e.mem)
	e.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, k := range []string{op + " " + key, op + " *"} {
			f, ok := e.fail[k]
			if !ok {
				continue
			}
			if f.n > 0 {
				f.n--
				e.fail[k] = f
			}
			if f.n == 0 {
				delete(e.fail, k)
			}
			return f.err
		}
		return nil
	})
	e.c = cache.New(e.fault, cache.Config{Now: e.clock, RequestTimeout: 10 * time.Second})
	// The tests of changes delete seeded objects; the guard has its own.
	cfg := Config{Now: e.clock, AllowDelete: !guarded}
	if writable {
		w, _ := e.c.Writer()
		area, err := stage.Open(stage.Config{Dir: t.TempDir(), Limit: 8 << 20, Writer: w,
			PartSize: store.MinPartSize, Threshold: store.MinPartSize})
		if err != nil {
			t.Fatal(err)
		}
		e.area = area
		cfg.Writer, cfg.Staging = w, area
	}
	e.ns = New(e.c, cfg)
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

// failOn makes the next n calls of op on key ("*" for any) fail with err
// (n < 0: every call; err nil: succeed again).
func (e *env) failOn(op, key string, n int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.fail, op+" "+key)
		return
	}
	e.fail[op+" "+key] = fault{err, n}
}

func (e *env) root() *Dir { return e.ns.Dir(bkt, "") }

// withOpen opens the root's file name with flags, runs fn on the handle
// and releases it.
func (e *env) withOpen(ctx context.Context, name string, flags uint32, fn func(h *Handle) error) error {
	en, err := e.root().Lookup(ctx, name)
	if err != nil {
		return err
	}
	h, err := en.File.Open(ctx, flags)
	if err != nil {
		return err
	}
	defer h.Release(ctx)
	return fn(h)
}

// object returns the stored bytes of key, or ok false.
func (e *env) object(key string) (string, bool) {
	e.t.Helper()
	ctx := context.Background()
	o, err := e.mem.Stat(ctx, bkt, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	p := make([]byte, o.Size)
	if _, err := e.mem.ReadAt(ctx, bkt, key, "", p, 0); err != nil && err != io.EOF {
		e.t.Fatal(err)
	}
	return string(p), true
}

// list returns the names in dir, in the order listed.
func (e *env) list(prefix string) []string {
	e.t.Helper()
	var out []string
	l := e.ns.Dir(bkt, prefix).List()
	for {
		en, ok, err := l.Next(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if !ok {
			return out
		}
		if en.Dir != nil {
			out = append(out, en.Name+"/")
		} else {
			out = append(out, en.Name)
		}
	}
}

// check verifies what the store holds (key -> content, "-" for absent)
// and what the listings show ("prefix|name" -> listed or not).
func (e *env) check(t *testing.T, stored map[string]string, listed map[string]bool) {
	t.Helper()
	for k, want := range stored {
		got, ok := e.object(k)
		if want == "-" && ok {
			t.Errorf("%q exists (%q), want none", k, got)
		}
		if want != "-" && (!ok || got != want) {
			t.Errorf("%q holds %q (exists %v), want %q", k, got, ok, want)
		}
	}
	for pn, want := range listed {
		prefix, name, _ := strings.Cut(pn, "|")
		if got := has(e.list(prefix), name); got != want {
			t.Errorf("%q listed in %q: %v, want %v (%q)", name, prefix, got, want, e.list(prefix))
		}
	}
}

func has(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// read reads all of the file through a fresh handle.
func read(t *testing.T, f *File) string {
	t.Helper()
	ctx := context.Background()
	h, err := f.Open(ctx, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	buf := make([]byte, 1<<16)
	data, hold, err := h.Read(ctx, buf, 0)
	defer hold.Release()
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// writeFile creates (or truncates) name in d with data and closes it.
func writeFile(t *testing.T, d *Dir, name, data string) error {
	t.Helper()
	ctx := context.Background()
	_, h, err := d.Create(ctx, name, syscall.O_WRONLY|syscall.O_TRUNC)
	if err != nil {
		return err
	}
	defer h.Release(ctx)
	if _, err := h.Write(ctx, []byte(data), 0); err != nil {
		return err
	}
	return h.Flush(ctx)
}

func TestLookup(t *testing.T) {
	e := newEnv(t, false)
	tests := []struct {
		dir, name string
		want      string // "dir", a file's content, or "" with err
		err       error
	}{
		{"", "file.txt", "hello\n", nil},
		{"", "dir", "dir", nil},
		{"dir/", "sub", "dir", nil},
		{"dir/sub/", "b.txt", "b", nil},
		{"", "both", "dir", nil},
		{"", "both" + ShadowSuffix, "shadowed", nil},
		{"", "file.txt" + ShadowSuffix, "", store.ErrNotFound}, // only a file hidden by a directory has a shadow name
		{"", "empty", "dir", nil},
		{"", "missing", "", store.ErrNotFound},
		{"", "..", "", store.ErrNotFound},
		{"", "", "", store.ErrNotFound},
		{"", strings.Repeat("x", 256), "", store.ErrNotFound},
	}
	for _, tt := range tests {
		en, err := e.ns.Dir(bkt, tt.dir).Lookup(context.Background(), tt.name)
		if !errors.Is(err, tt.err) {
			t.Errorf("lookup %q%q: %v, want %v", tt.dir, tt.name, err, tt.err)
			continue
		}
		switch {
		case err != nil:
		case tt.want == "dir":
			if en.Dir == nil || en.Dir.Prefix() != tt.dir+tt.name+"/" {
				t.Errorf("lookup %q%q = %+v, want directory", tt.dir, tt.name, en)
			}
		case en.File == nil:
			t.Errorf("lookup %q%q = %+v, want a file", tt.dir, tt.name, en)
		default:
			if got := read(t, en.File); got != tt.want {
				t.Errorf("lookup %q%q reads %q, want %q", tt.dir, tt.name, got, tt.want)
			}
		}
	}
	if got, want := strings.Join(e.list(""), " "), "both/ dir/ empty/ file.txt full/ both"+ShadowSuffix; got != want {
		t.Errorf("listing %q, want %q", got, want)
	}
}

// TestReadOnly: every change fails with ErrReadOnly and nothing is stored.
func TestReadOnly(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	d := e.root()
	en, err := d.Lookup(ctx, "file.txt")
	if err != nil {
		t.Fatal(err)
	}
	dirEn, _ := d.Lookup(ctx, "dir")
	ops := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, _, err := d.Create(ctx, "n", syscall.O_WRONLY); return err }},
		{"open for write", func() error { _, err := en.File.Open(ctx, syscall.O_WRONLY); return err }},
		{"append", func() error { _, err := en.File.Open(ctx, syscall.O_RDONLY|syscall.O_APPEND); return err }},
		{"truncate", func() error { _, err := en.File.Truncate(ctx, 0); return err }},
		{"setattr size", func() error { _, err := en.File.SetSize(ctx, nil, 0, true); return err }},
		{"mkdir", func() error { _, err := d.Mkdir(ctx, "d2"); return err }},
		{"unlink", func() error { return d.Unlink(ctx, "file.txt") }},
		{"rmdir", func() error { return d.Rmdir(ctx, "empty") }},
		{"rename", func() error { _, err := d.Rename(ctx, "file.txt", d, "x", false, Entry{}); return err }},
		{"rename dir", func() error { _, err := d.Rename(ctx, "dir", d, "x", false, dirEn); return err }},
		{"setattr dir", func() error { return d.SetTimes() }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", op.name, err)
		}
	}
	for _, op := range []string{faultstore.OpPut, faultstore.OpDelete, faultstore.OpCopy} {
		if n := e.fault.Count(op); n != 0 {
			t.Errorf("%d %s calls on a read-only namespace", n, op)
		}
	}
}

// TestChanges: each operation's effect on the store, the listing and
// lookups, and the errors of the requests it refuses.
func TestChanges(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		do     func(e *env) error
		err    error
		stored map[string]string // key -> content ("-": absent)
		listed map[string]bool   // "prefix|name" -> listed or not
	}{
		{
			name:   "create write close",
			do:     func(e *env) error { return writeFile(t, e.root(), "new.txt", "data") },
			stored: map[string]string{"new.txt": "data"},
			listed: map[string]bool{"|new.txt": true},
		},
		{
			name:   "create in a directory",
			do:     func(e *env) error { return writeFile(t, e.ns.Dir(bkt, "dir/sub/"), "c.txt", "c") },
			stored: map[string]string{"dir/sub/c.txt": "c"},
			listed: map[string]bool{"dir/sub/|c.txt": true, "dir/sub/|b.txt": true},
		},
		{
			name: "overwrite with O_TRUNC",
			do: func(e *env) error {
				return e.withOpen(ctx, "file.txt", syscall.O_WRONLY|syscall.O_TRUNC, func(h *Handle) error {
					h.Write(ctx, []byte("new"), 0)
					return h.Flush(ctx)
				})
			},
			stored: map[string]string{"file.txt": "new"},
		},
		{
			name: "append",
			do: func(e *env) error {
				return e.withOpen(ctx, "file.txt", syscall.O_WRONLY|syscall.O_APPEND, func(h *Handle) error {
					h.Write(ctx, []byte("more\n"), 0)
					return h.Flush(ctx)
				})
			},
			stored: map[string]string{"file.txt": "hello\nmore\n"},
		},
		{
			name: "truncate by name",
			do: func(e *env) error {
				en, _ := e.root().Lookup(ctx, "file.txt")
				a, err := en.File.Truncate(ctx, 2)
				if err == nil && a.Size != 2 {
					err = fmt.Errorf("size %d after truncate", a.Size)
				}
				return err
			},
			stored: map[string]string{"file.txt": "he"},
		},
		{
			name:   "invalid name",
			do:     func(e *env) error { return writeFile(t, e.root(), "x"+ShadowSuffix, "x") },
			err:    ErrInvalid,
			stored: map[string]string{"x" + ShadowSuffix: "-"},
		},
		{
			name:   "mkdir",
			do:     func(e *env) error { _, err := e.root().Mkdir(ctx, "made"); return err },
			stored: map[string]string{"made/": ""},
			listed: map[string]bool{"|made/": true},
		},
		{
			name: "mkdir existing",
			do:   func(e *env) error { _, err := e.root().Mkdir(ctx, "empty"); return err },
			err:  ErrExist,
		},
		{
			name:   "unlink",
			do:     func(e *env) error { return e.root().Unlink(ctx, "file.txt") },
			stored: map[string]string{"file.txt": "-"},
			listed: map[string]bool{"|file.txt": false},
		},
		{
			name:   "unlink a shadowed file by its shadow name",
			do:     func(e *env) error { return e.root().Unlink(ctx, "both"+ShadowSuffix) },
			stored: map[string]string{"both": "-", "both/in.txt": "in"},
		},
		{
			name:   "rmdir",
			do:     func(e *env) error { return e.root().Rmdir(ctx, "empty") },
			stored: map[string]string{"empty/": "-"},
			listed: map[string]bool{"|empty/": false},
		},
		{
			name:   "rmdir not empty",
			do:     func(e *env) error { return e.root().Rmdir(ctx, "full") },
			err:    ErrNotEmpty,
			stored: map[string]string{"full/": "", "full/f": "f"},
		},
		{
			name: "rename file",
			do: func(e *env) error {
				_, err := e.root().Rename(ctx, "file.txt", e.ns.Dir(bkt, "dir/"), "moved.txt", false, Entry{})
				return err
			},
			stored: map[string]string{"file.txt": "-", "dir/moved.txt": "hello\n"},
			listed: map[string]bool{"|file.txt": false, "dir/|moved.txt": true},
		},
		{
			name: "rename noreplace onto an existing name",
			do: func(e *env) error {
				_, err := e.ns.Dir(bkt, "dir/").Rename(ctx, "a.txt", e.root(), "file.txt", true, Entry{})
				return err
			},
			err:    ErrExist,
			stored: map[string]string{"dir/a.txt": "a", "file.txt": "hello\n"},
		},
		{
			name: "rename directory",
			do: func(e *env) error {
				_, err := e.root().Rename(ctx, "dir", e.root(), "dir2", false, Entry{})
				return err
			},
			stored: map[string]string{"dir/a.txt": "-", "dir/sub/b.txt": "-", "dir2/a.txt": "a", "dir2/sub/b.txt": "b"},
			listed: map[string]bool{"|dir/": false, "|dir2/": true, "dir2/sub/|b.txt": true},
		},
		{
			name: "rename directory onto a non-empty one",
			do: func(e *env) error {
				_, err := e.root().Rename(ctx, "dir", e.root(), "full", false, Entry{})
				return err
			},
			err:    ErrNotEmpty,
			stored: map[string]string{"dir/a.txt": "a"},
		},
		{
			name: "rename across buckets",
			do: func(e *env) error {
				_, err := e.root().Rename(ctx, "file.txt", e.ns.Dir("other", ""), "x", false, Entry{})
				return err
			},
			err: ErrCrossDevice,
		},
		{
			name: "rename directory with a file open for writing",
			do: func(e *env) error {
				_, h, err := e.ns.Dir(bkt, "dir/").Create(ctx, "open.txt", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer h.Release(ctx)
				_, err = e.root().Rename(ctx, "dir", e.root(), "dir2", false, Entry{})
				return err
			},
			err:    ErrBusy,
			stored: map[string]string{"dir/a.txt": "a", "dir2/a.txt": "-"},
		},
		{
			name: "rmdir with a file being written",
			do: func(e *env) error {
				_, h, err := e.ns.Dir(bkt, "empty/").Create(ctx, "open.txt", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer h.Release(ctx)
				return e.root().Rmdir(ctx, "empty")
			},
			err:    ErrNotEmpty,
			stored: map[string]string{"empty/": ""},
		},
		{
			name: "write through a read-only handle",
			do: func(e *env) error {
				return e.withOpen(ctx, "file.txt", syscall.O_RDONLY, func(h *Handle) error {
					_, err := h.Write(ctx, []byte("x"), 0)
					return err
				})
			},
			err:    ErrNotWriter,
			stored: map[string]string{"file.txt": "hello\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true)
			e.list("") // a cached listing, which the change must keep true
			e.list("dir/")
			if err := tt.do(e); !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			e.check(t, tt.stored, tt.listed)
		})
	}
}

// TestRenameFollows: what the caller holds of a renamed directory or file
// reads and lists the new keys, and a file open for writing uploads under
// its new name.
func TestRenameFollows(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	d := e.root()
	dir, _ := d.Lookup(ctx, "dir")
	sub, _ := dir.Dir.Lookup(ctx, "sub")
	a, _ := dir.Dir.Lookup(ctx, "a.txt")
	mv, err := d.Rename(ctx, "dir", d, "dir2", false, dir)
	if err != nil || mv == nil {
		t.Fatalf("rename dir: %v, move %v", err, mv)
	}
	for _, x := range []Entry{dir, sub, a} {
		mv.Follow(x)
	}
	if dir.Dir.Prefix() != "dir2/" || sub.Dir.Prefix() != "dir2/sub/" {
		t.Errorf("prefixes after the move: %q, %q", dir.Dir.Prefix(), sub.Dir.Prefix())
	}
	if _, k := a.File.Name(); k != "dir2/a.txt" {
		t.Errorf("file key after the move: %q", k)
	}
	if got := read(t, a.File); got != "a" {
		t.Errorf("moved file reads %q", got)
	}
	if got := strings.Join(e.list("dir2/"), " "); got != "a.txt sub/" {
		t.Errorf("dir2 lists %q", got)
	}

	f, h, err := d.Create(ctx, "w.txt", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(ctx, []byte("one"), 0)
	if _, err := d.Rename(ctx, "w.txt", d, "w2.txt", false, Entry{File: f}); err != nil {
		t.Fatalf("rename of an open file: %v", err)
	}
	h.Write(ctx, []byte("two"), 3)
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.Release(ctx)
	if got, _ := e.object("w2.txt"); got != "onetwo" {
		t.Errorf("w2.txt holds %q", got)
	}
	if _, ok := e.object("w.txt"); ok {
		t.Errorf("w.txt still exists")
	}
}

// TestListWhileCreating: a file created and still open is listed before
// its upload, once, and no more after it is unlinked.
func TestListWhileCreating(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	_, h, err := e.root().Create(ctx, "open.txt", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	if got := e.list(""); !has(got, "open.txt") {
		t.Errorf("open new file not listed: %q", got)
	}
	h.Flush(ctx)
	n := 0
	for _, name := range e.list("") {
		if name == "open.txt" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("uploaded file listed %d times", n)
	}
	if err := e.root().Unlink(ctx, "open.txt"); err != nil {
		t.Fatal(err)
	}
	if got := e.list(""); has(got, "open.txt") {
		t.Errorf("unlinked file listed: %q", got)
	}
}

// TestAppendLarge: appending to an object larger than the staging area
// fetches only its last part; the rest is copied on the server.
func TestAppendLarge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	orig := strings.Repeat("0123456789abcdef", (12<<20)/16) // 12 MiB: more than the 8 MiB staging area
	if _, err := e.mem.Put(ctx, bkt, "big.log", strings.NewReader(orig), int64(len(orig))); err != nil {
		t.Fatal(err)
	}
	en, err := e.root().Lookup(ctx, "big.log")
	if err != nil {
		t.Fatal(err)
	}
	e.fault.Reset()
	h, err := en.File.Open(ctx, syscall.O_WRONLY|syscall.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, []byte("one more line\n"), 0); err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	h.Release(ctx)
	if got, _ := e.object("big.log"); got != orig+"one more line\n" {
		t.Errorf("object after the append: %d bytes, want %d", len(got), len(orig)+14)
	}
	if n := e.fault.Count(faultstore.OpCopyPart); n != 2 {
		t.Errorf("%d parts copied on the server, want 2", n)
	}
	if n := e.fault.Count(faultstore.OpReadAt); n != 1 {
		t.Errorf("%d GETs, want 1 (the last part)", n)
	}
}

// TestReserved: the root keeps Config.Reserved for itself, on every store
// and with every change refused, and only the root: another Dir of the
// same prefix, and every other directory, show and change it as usual.
func TestReserved(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	ns := New(e.c, Config{Now: e.clock, Writer: e.ns.cfg.Writer, Staging: e.area, AllowDelete: true, Reserved: "dir"})
	root := ns.Root(bkt, "")
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"unlink", func() error { return root.Unlink(ctx, "dir") }},
		{"rmdir", func() error { return root.Rmdir(ctx, "dir") }},
		{"rename away", func() error { _, err := root.Rename(ctx, "dir", root, "other", false, Entry{}); return err }},
		{"rename onto", func() error { _, err := root.Rename(ctx, "file.txt", root, "dir", false, Entry{}); return err }},
		{"rename into the root", func() error {
			_, err := ns.Dir(bkt, "full/").Rename(ctx, "f", root, "dir", false, Entry{})
			return err
		}},
	} {
		if err := tc.do(); !errors.Is(err, ErrNotPermitted) {
			t.Errorf("%s: %v, want ErrNotPermitted", tc.name, err)
		}
	}
	e.check(t, map[string]string{"dir/a.txt": "a", "file.txt": "hello\n", "full/f": "f"}, nil)
	for _, tc := range []struct {
		dir      *Dir
		name     string
		reserved bool
	}{
		{root, "dir", true},
		{root, "file.txt", false},
		{ns.Dir(bkt, ""), "dir", false},
		{ns.Root(bkt, "dir/"), "dir", true},
		{ns.Root(bkt, "dir/"), "", false},
		{ns.Dir(bkt, "dir/"), "dir", false},
	} {
		if got := tc.dir.Reserved(tc.name); got != tc.reserved {
			t.Errorf("%q in %q (root %v): Reserved = %v", tc.name, tc.dir.Prefix(), tc.dir.root, got)
		}
	}
	var listed []string
	for l := root.List(); ; {
		en, ok, err := l.Next(ctx)
		if err != nil || !ok {
			break
		}
		listed = append(listed, en.Name)
	}
	if has(listed, "dir") || !has(listed, "file.txt") {
		t.Errorf("the root lists %q: want file.txt, and dir left out", listed)
	}
	if got := e.list(""); !has(got, "dir/") {
		t.Errorf("a Dir of the same prefix lists %q, want dir/ in it", got)
	}
}

// TestRenameDirAfterClose: the kernel releases a file after close(2) has
// returned, so a directory rename right after may find its files uploaded
// but still open; it waits for their release instead of failing with EBUSY,
// and a caller that gives up is not kept waiting.
func TestRenameDirAfterClose(t *testing.T) {
	tests := []struct {
		name    string
		release time.Duration // when the handle is released; <0: not before the rename ends
		cancel  bool
		err     error
		stored  map[string]string
	}{
		{name: "released during the rename", release: 50 * time.Millisecond,
			stored: map[string]string{"dir/new.txt": "-", "dir2/new.txt": "new", "dir2/a.txt": "a"}},
		{name: "caller interrupted while it waits", release: -1, cancel: true, err: context.Canceled,
			stored: map[string]string{"dir/new.txt": "new", "dir2/a.txt": "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bg := context.Background()
			e := newEnv(t, true)
			_, h, err := e.ns.Dir(bkt, "dir/").Create(bg, "new.txt", syscall.O_WRONLY)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(bg, []byte("new"), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Flush(bg); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			if tt.release >= 0 {
				time.AfterFunc(tt.release, func() { h.Release(bg); close(done) })
			} else {
				defer h.Release(bg)
				close(done)
			}
			ctx, cancel := context.WithCancel(bg)
			if tt.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			defer cancel()
			start := time.Now()
			_, err = e.root().Rename(ctx, "dir", e.root(), "dir2", false, Entry{})
			if !errors.Is(err, tt.err) {
				t.Fatalf("rename: %v, want %v", err, tt.err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("rename took %v", took)
			}
			<-done
			e.check(t, tt.stored, nil)
		})
	}
}
