package e2e

import (
	"debug/elf"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestVersionStamped: the binary scripts/build made (the one the image
// ships) says which commit it is and needs no shared libraries.
func TestVersionStamped(t *testing.T) {
	s := need(t)
	out := strings.TrimSpace(s.must(t, 10*time.Second, s.bin, "version"))
	want := "bucketfs dev"
	if d, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		want = "bucketfs " + strings.TrimSpace(string(d))
	}
	// The tree may have changed since the build (-dirty): compare the commit.
	if strings.TrimSuffix(out, "-dirty") != strings.TrimSuffix(want, "-dirty") {
		t.Errorf("bucketfs version says %q, want %q (build with scripts/build)", out, want)
	}
	f, err := elf.Open(s.bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked: the image (FROM scratch) has no libc; build with scripts/build (CGO_ENABLED=0)", s.bin)
		}
	}
}
