package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefresh: with a long --metadata-ttl, objects another client writes
// or replaces stay unseen until "bucketfs refresh" (or a line written to
// .bucketfs/refresh, from R) makes the mount forget them; then they show
// at once.
func TestRefresh(t *testing.T) {
	s := need(t)
	bkt := s.bucket("refresh")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {
		"out/a.csv": []byte("one\n"), "r/x.csv": []byte("x\n"), "keep.txt": []byte("k\n"),
	}})
	mp := s.mount(t, "s3://"+bkt, "--metadata-ttl", "1h")
	ls := func(dir string) string {
		t.Helper()
		return strings.Join(strings.Fields(s.must(t, 30*time.Second, "ls", filepath.Join(mp, dir))), " ")
	}
	cat := func(p string) string {
		t.Helper()
		r := s.exec(t, 30*time.Second, nil, "cat", filepath.Join(mp, p))
		if r.err != nil {
			return "error: " + strings.TrimSpace(r.stderr)
		}
		return r.stdout
	}
	if got := ls("out"); got != "a.csv" {
		t.Fatalf("ls out = %q", got)
	}
	cat("out/a.csv")
	if got := cat("out/new.csv"); !strings.Contains(got, "No such file") {
		t.Fatalf("out/new.csv before it exists: %q", got)
	}
	ls("r")

	ctx := context.Background()
	for k, v := range map[string]string{"out/a.csv": "two!\n", "out/new.csv": "new\n", "r/y.csv": "y\n"} {
		if err := s.s3.put(ctx, bkt, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// Cached for the hour: nothing shows yet.
	if got := ls("out"); got != "a.csv" {
		t.Fatalf("ls out before refresh = %q, want the cached listing", got)
	}

	s.must(t, 30*time.Second, s.bin, "refresh", filepath.Join(mp, "out"))
	if got := ls("out"); got != "a.csv new.csv" {
		t.Errorf("ls out after refresh = %q", got)
	}
	if got := cat("out/a.csv"); got != "two!\n" {
		t.Errorf("out/a.csv after refresh = %q, want the new content", got)
	}
	if got := cat("out/new.csv"); got != "new\n" {
		t.Errorf("out/new.csv after refresh = %q", got)
	}

	// From R, with no shell: a line written to the control file.
	r := s.exec(t, time.Minute, nil, "Rscript", "-e",
		`writeLines("r", file.path(commandArgs(TRUE)[1], ".bucketfs", "refresh")); cat(list.files(file.path(commandArgs(TRUE)[1], "r")))`, mp)
	if r.err != nil || strings.TrimSpace(r.stdout) != "x.csv y.csv" {
		t.Errorf("R refresh then list.files: %v %q %q", r.err, r.stdout, r.stderr)
	}

	// Refused: a path outside any mount, and ".." written directly.
	r = s.exec(t, 30*time.Second, nil, s.bin, "refresh", t.TempDir())
	if r.err == nil || !strings.Contains(r.stderr, "is not in a bucketfs mount") {
		t.Errorf("refresh outside a mount: %v %q", r.err, r.stderr)
	}
	err := os.WriteFile(filepath.Join(mp, ".bucketfs", "refresh"), []byte("../x\n"), 0)
	if err == nil || !strings.Contains(err.Error(), "invalid argument") {
		t.Errorf(`writing "../x" to the refresh file: %v, want EINVAL`, err)
	}
}
