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
	if _, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		// git describe: TAG-N-gHASH, or HASH without tags; -dirty when
		// the tree had changes. The commit must be one of this repository.
		v := strings.TrimSuffix(strings.TrimPrefix(out, "bucketfs "), "-dirty")
		rev := v
		if i := strings.LastIndex(v, "-g"); i >= 0 {
			rev = v[i+2:]
		}
		if err := exec.Command("git", "rev-parse", "--verify", "--quiet", rev+"^{commit}").Run(); err != nil || v == "dev" {
			t.Errorf("bucketfs version says %q: want the git commit it was built from (build with scripts/build)", out)
		}
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
