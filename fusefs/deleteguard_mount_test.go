package fusefs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDeleteGuardMounted: with default flags a mount deletes nothing it
// did not write (EPERM, one warning), and what it wrote itself can be
// renamed and removed, unless someone replaced it since.
func TestDeleteGuardMounted(t *testing.T) {
	c := mountWrites(t, readWrite)
	p := func(name string) string { return filepath.Join(c.mp, name) }
	keep := func(t *testing.T) {
		t.Helper()
		for k, v := range writeSeed {
			c.mustHold(t, k, []byte(v))
		}
	}

	t.Run("existing objects are refused", func(t *testing.T) {
		checks := []struct {
			name string
			do   func() error
			want syscall.Errno
		}{
			{"unlink", func() error { return os.Remove(p("exist.txt")) }, syscall.EPERM},
			{"unlink below", func() error { return os.Remove(p("dir/sub/b.txt")) }, syscall.EPERM},
			{"rename file", func() error { return os.Rename(p("old name.csv"), p("new name.csv")) }, syscall.EPERM},
			{"rename file over one of ours", func() error {
				if err := os.WriteFile(p("target.csv"), []byte("t"), 0o644); err != nil {
					return err
				}
				return os.Rename(p("exist.txt"), p("target.csv"))
			}, syscall.EPERM},
			{"rename dir", func() error { return os.Rename(p("renamed"), p("moved")) }, syscall.EPERM},
			{"rmdir of an existing empty dir (its marker)", func() error { return os.Remove(p("empty")) }, syscall.EPERM},
			{"rmdir of a non-empty dir", func() error { return os.Remove(p("full")) }, syscall.ENOTEMPTY},
		}
		for _, ch := range checks {
			if err := ch.do(); !errors.Is(err, ch.want) {
				t.Errorf("%s: %v, want %v", ch.name, err, ch.want)
			}
		}
		keep(t)
	})

	t.Run("rm -rf of the whole mount", func(t *testing.T) {
		out, err := exec.Command("rm", "-rf", c.mp).CombinedOutput()
		if err == nil {
			t.Errorf("rm -rf of the mount succeeded")
		}
		if !strings.Contains(string(out), "Operation not permitted") {
			t.Errorf("rm -rf said %q, want Operation not permitted", out)
		}
		keep(t)
		if _, err := os.Stat(p("exist.txt")); err != nil {
			t.Errorf("exist.txt through the mount after rm -rf: %v", err)
		}
	})

	t.Run("own files: rename and remove", func(t *testing.T) {
		// R's saveRDS/write.csv to a temporary name, then file.rename.
		if err := os.WriteFile(p("out.tmp"), []byte("results"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p("out.tmp"), p("out.csv")); err != nil {
			t.Fatalf("rename of a file written here: %v", err)
		}
		c.mustHold(t, "out.csv", []byte("results"))
		if err := os.Rename(p("out.csv"), p("dir/out.csv")); err != nil {
			t.Fatalf("rename of a renamed file: %v", err)
		}
		if err := os.Remove(p("dir/out.csv")); err != nil {
			t.Fatalf("unlink of a file written and renamed here: %v", err)
		}
		for _, k := range []string{"out.tmp", "out.csv", "dir/out.csv"} {
			if _, _, ok := c.object(t, k); ok {
				t.Errorf("%s still there", k)
			}
		}
		// Created and removed before it was ever uploaded.
		f, err := os.Create(p("scratch"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p("scratch")); err != nil {
			t.Errorf("unlink of an open new file: %v", err)
		}
		f.Close()
	})

	t.Run("own directory: rename and rm -rf", func(t *testing.T) {
		if err := os.MkdirAll(p("work/sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"work/a.csv", "work/sub/b.csv"} {
			if err := os.WriteFile(p(n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Rename(p("work"), p("work2")); err != nil {
			t.Fatalf("rename of a directory made here: %v", err)
		}
		c.mustHold(t, "work2/sub/b.csv", []byte("work/sub/b.csv"))
		if out, err := exec.Command("rm", "-rf", p("work2")).CombinedOutput(); err != nil {
			t.Fatalf("rm -rf of a directory made here: %v: %s", err, out)
		}
		for _, k := range []string{"work/", "work/a.csv", "work2/", "work2/a.csv", "work2/sub/", "work2/sub/b.csv"} {
			if _, _, ok := c.object(t, k); ok {
				t.Errorf("%s still there", k)
			}
		}
		// A directory of ours holding an existing object is not ours to
		// rename: the rename would delete that object.
		if err := os.Mkdir(p("mixed"), 0o755); err != nil {
			t.Fatal(err)
		}
		c.ask(t, "put %s %s", q("mixed/theirs.txt"), q("theirs"))
		if err := os.Rename(p("mixed"), p("mixed2")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("rename of a dir holding another's object: %v, want EPERM", err)
		}
		c.mustHold(t, "mixed/theirs.txt", []byte("theirs"))
	})

	t.Run("replaced since it was written", func(t *testing.T) {
		if err := os.WriteFile(p("mine.txt"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.ask(t, "put %s %s", q("mine.txt"), q("theirs now"))
		if err := os.Remove(p("mine.txt")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("unlink of a file replaced by another writer: %v, want EPERM", err)
		}
		if err := os.Rename(p("mine.txt"), p("mine2.txt")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("rename of a file replaced by another writer: %v, want EPERM", err)
		}
		c.mustHold(t, "mine.txt", []byte("theirs now"))
		if _, _, ok := c.object(t, "mine2.txt"); ok {
			t.Errorf("the rename copied the replaced object")
		}
	})

	t.Run("one warning", func(t *testing.T) {
		n := 0
		for _, r := range c.logLines(t) {
			if msg, _ := r["msg"].(string); strings.HasPrefix(msg, "delete refused (") {
				n++
				if r["level"] != "WARN" || !strings.Contains(msg, "--allow-delete") || !strings.Contains(msg, "allow_delete") {
					t.Errorf("hint: %v", r)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d hints logged, want 1", n)
		}
	})
}
