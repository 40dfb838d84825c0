package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A mount made by root asks the kernel for 4 MiB of read-ahead on it (the
// FUSE default of 128 KiB makes sequential reads arrive as 64 KiB FUSE
// requests); a user's mount leaves the setting alone and still works.
func TestKernelReadAhead(t *testing.T) {
	s := need(t)
	if os.Geteuid() != 0 {
		t.Skip("only root may set a mount's read_ahead_kb")
	}
	b := s.bucket("readahead")
	sums := s.seedRandom(t, b+"/seq.bin:8MiB")
	mp := s.mount(t, "s3://"+b)
	f := strings.Fields(mountLine(t, mp))
	if len(f) < 3 {
		t.Fatalf("no mountinfo line for %s", mp)
	}
	got, err := os.ReadFile(filepath.Join("/sys/class/bdi", f[2], "read_ahead_kb"))
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(got)); v != "4096" {
		t.Errorf("read_ahead_kb of the mount = %s, want 4096", v)
	}
	if out := s.must(t, time.Minute, "sha256sum", filepath.Join(mp, "seq.bin")); !strings.HasPrefix(out, sums[b+"/seq.bin"]) {
		t.Errorf("sha256sum through the mount = %q, want %s", out, sums[b+"/seq.bin"])
	}
}
