package namespace

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
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
