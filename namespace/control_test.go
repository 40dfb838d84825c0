package namespace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

// Each control file opens only for what it is for, and only the written
// one takes a truncation to 0.
func TestControlFiles(t *testing.T) {
	const (
		rd, wr, rw          = syscall.O_RDONLY, syscall.O_WRONLY, syscall.O_RDWR
		trunc, app, creat   = syscall.O_TRUNC, syscall.O_APPEND, syscall.O_CREAT
		refresh, st, stJSON = RefreshFile, StatusFile, StatusJSONFile
	)
	for _, tc := range []struct {
		name  string
		flags uint32
		ok    bool
	}{
		{st, rd, true},
		{stJSON, rd, true},
		{st, rd | syscall.O_NONBLOCK, true},
		{st, wr, false},
		{st, rw, false},
		{st, rd | trunc, false},
		{stJSON, wr | app, false},
		{stJSON, rd | app, false},
		{refresh, wr, true},
		{refresh, wr | creat | trunc, true}, // echo PATH > refresh
		{refresh, wr | app, true},           // echo PATH >> refresh
		{refresh, rd, false},
		{refresh, rw, false},
	} {
		c, ok := Control(tc.name)
		if !ok {
			t.Fatalf("no control file %q", tc.name)
		}
		if err := c.Open(tc.flags); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrControl) {
			t.Errorf("open %s with %#o: %v, want ok %v", tc.name, tc.flags, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		name     string
		size     uint64
		sizeOnly bool
		ok       bool
	}{
		{RefreshFile, 0, true, true},
		{RefreshFile, 1, true, false},
		{RefreshFile, 0, false, false}, // a chmod or utimes along with it
		{StatusFile, 0, true, false},
		{StatusJSONFile, 0, false, false},
	} {
		c, _ := Control(tc.name)
		if err := c.Setattr(tc.size, tc.sizeOnly); (err == nil) != tc.ok {
			t.Errorf("setattr %s size %d only %v: %v, want ok %v", tc.name, tc.size, tc.sizeOnly, err, tc.ok)
		}
	}

	status := func() (text, json []byte) { return []byte("text"), []byte("json") }
	for name, want := range map[string]string{StatusFile: "text", StatusJSONFile: "json", RefreshFile: ""} {
		c, _ := Control(name)
		if got := c.Content(status); string(got) != want || c.Path() != ControlDir+"/"+name {
			t.Errorf("%s (%s): content %q, want %q", name, c.Path(), got, want)
		}
	}

	var names []string
	inos := map[uint64]string{ControlIno(""): ControlDir, Ino(ControlDir, "", true): "a bucket named like it"}
	for _, c := range ControlFiles {
		names = append(names, c.Name)
		if other, dup := inos[c.Ino()]; dup {
			t.Errorf("%s has the inode of %s", c.Name, other)
		}
		inos[c.Ino()] = c.Name
		want := uint32(0o444)
		if c.Written {
			want = 0o222
		}
		if c.Perm != want {
			t.Errorf("%s: perm %#o, want %#o", c.Name, c.Perm, want)
		}
	}
	if got := strings.Join(names, " "); got != "refresh status status.json" {
		t.Errorf("control files %q, want them in name order", got)
	}
	if _, ok := Control("real.txt"); ok {
		t.Error("a name not in the table is a control file")
	}
}

// Writes to the refresh file refresh each line as it completes, the last
// one at close, and fail on the first bad line or an endless one.
func TestRefreshLines(t *testing.T) {
	bad := errors.New("bad path")
	for _, tc := range []struct {
		name   string
		writes []string // "!" + data: the write must fail
		flush  string   // "!": the flush must fail
		want   string   // the lines refreshed, "|" after each
	}{
		{name: "one line", writes: []string{"a/b\n"}, want: "a/b|"},
		{name: "split over writes", writes: []string{"a/", "b", "\nc\n"}, want: "a/b|c|"},
		{name: "many in one", writes: []string{"x\ny\n\nz\n"}, want: "x|y||z|"},
		{name: "last without newline at close", writes: []string{"x\ny"}, want: "x|y|"},
		{name: "blank last line skipped", writes: []string{"x\n  \t"}, want: "x|"},
		{name: "carriage returns kept for the parser", writes: []string{"x\r\n"}, want: "x\r|"},
		{name: "bad line fails the write and drops the rest", writes: []string{"!a\nbad\nc\nd", "e\n"}, want: "a|bad|e|"},
		{name: "bad last line fails the close", writes: []string{"bad"}, flush: "!", want: "bad|"},
		{name: "too long a line", writes: []string{strings.Repeat("x", 4096), "!y", "z\n"}, want: "z|"},
		{name: "long line with its newline", writes: []string{strings.Repeat("x", 5000) + "\n"}, want: strings.Repeat("x", 5000) + "|"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got strings.Builder
			refresh := func(line string) error {
				fmt.Fprintf(&got, "%s|", line)
				if line == "bad" {
					return bad
				}
				return nil
			}
			var l RefreshLines
			for _, w := range tc.writes {
				fail := strings.HasPrefix(w, "!")
				if err := l.Write([]byte(strings.TrimPrefix(w, "!")), refresh); (err != nil) != fail {
					t.Fatalf("write %.20q: %v, want failure %v", w, err, fail)
				}
			}
			if err := l.Flush(refresh); (err != nil) != (tc.flush == "!") {
				t.Fatalf("flush: %v", err)
			}
			if got.String() != tc.want {
				t.Errorf("refreshed %.60q, want %.60q", got.String(), tc.want)
			}
			if err := l.Flush(refresh); err != nil || got.String() != tc.want {
				t.Errorf("a second flush refreshed again: %v", err)
			}
		})
	}
}

// The control directory, reached by its reserved name at the mount's
// root only: its files, and no change in it or to it.
func TestControlDir(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	e.ns.cfg.Reserved = ControlDir
	for _, root := range []*Dir{e.ns.Root(bkt, ""), e.ns.Root("", "")} {
		en, err := root.Lookup(ctx, ControlDir)
		if err != nil || en.Dir == nil || !en.Dir.control {
			t.Fatalf("lookup %s in the root of %q: %+v, %v", ControlDir, root.bucket, en, err)
		}
	}
	if en, err := e.ns.Dir(bkt, "dir/").Lookup(ctx, ControlDir); err == nil {
		t.Errorf("%s found below the root: %+v", ControlDir, en)
	}
	root := e.ns.Root(bkt, "")
	en, _ := root.Lookup(ctx, ControlDir)
	ctl := en.Dir
	if ctl.Ino() != ControlIno("") || ctl.Perm(0o755) != 0o555 || root.Perm(0o755) != 0o755 {
		t.Errorf("ino %d perm %#o", ctl.Ino(), ctl.Perm(0o755))
	}
	var names []string
	l := ctl.List()
	for pass := 0; pass < 2; pass++ {
		names = names[:0]
		for {
			en, ok, err := l.Next(ctx)
			if err != nil || !ok {
				break
			}
			if en.Control == nil || en.Control.Name != en.Name || en.Ino() != ControlIno(en.Name) {
				t.Errorf("entry %+v", en)
			}
			names = append(names, en.Name)
		}
		if got := strings.Join(names, " "); got != "refresh status status.json" {
			t.Errorf("pass %d: list = %q", pass, got)
		}
		l.Rewind()
	}
	if en, err := ctl.Lookup(ctx, StatusJSONFile); err != nil || en.Control == nil || !en.Control.JSON {
		t.Errorf("lookup status.json = %+v, %v", en, err)
	}
	if _, err := ctl.Lookup(ctx, "real.txt"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lookup of another name: %v", err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"create in", func() error { _, _, err := ctl.Create(ctx, "new", 0); return err }, ErrControl},
		{"mkdir in", func() error { _, err := ctl.Mkdir(ctx, "d"); return err }, ErrControl},
		{"unlink in", func() error { return ctl.Unlink(ctx, StatusFile) }, ErrControl},
		{"rmdir in", func() error { return ctl.Rmdir(ctx, "d") }, ErrControl},
		{"setattr", ctl.SetTimes, ErrControl},
		{"link in", ctl.Special, ErrControl},
		{"link elsewhere", root.Special, ErrNotSupported},
		{"rmdir it", func() error { return root.Rmdir(ctx, ControlDir) }, ErrNotPermitted},
		{"unlink it", func() error { return root.Unlink(ctx, ControlDir) }, ErrNotPermitted},
		{"rename it", func() error { _, err := root.Rename(ctx, ControlDir, root, "moved", false, Entry{}); return err }, ErrNotPermitted},
		{"rename over it", func() error { _, err := root.Rename(ctx, "dir", root, ControlDir, false, Entry{}); return err }, ErrNotPermitted},
		{"rename a file out", func() error { _, err := ctl.Rename(ctx, StatusFile, root, "s", false, Entry{}); return err }, ErrControl},
		{"rename a file in", func() error { _, err := root.Rename(ctx, "file.txt", ctl, "x", false, Entry{}); return err }, ErrControl},
	} {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, ok := e.object("file.txt"); !ok {
		t.Error("file.txt is gone")
	}
	for _, k := range []string{"new", "moved", "s", "x", ControlDir + "/new", ControlDir + "/x"} {
		if _, ok := e.object(k); ok {
			t.Errorf("%s was made", k)
		}
	}
}
