package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Directories that may hold a mount. A directory removed while a
// read-write mount is left in it is a delete of every object the mount
// shows, so mount points are never t.TempDir() (whose removal the testing
// package does, mount or not): they come from mountDir and sharedDir, whose
// clean-up unmounts, checks /proc/self/mountinfo and removes only what is
// on the directory's own file system.

// sharedPrefix is where directories that other users must reach are made:
// BUCKETFS_E2E_SHARED_PREFIX (scripts/test sets one per run, and unmounts
// and removes only below it), else /tmp/bucketfs-e2e-.
func sharedPrefix() string {
	if p := os.Getenv("BUCKETFS_E2E_SHARED_PREFIX"); p != "" {
		return p
	}
	return "/tmp/bucketfs-e2e-"
}

// mountDir makes an empty directory to mount on, removed safely when the
// test ends (after the mount's own clean-up, which is registered later).
func (s *suite) mountDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bucketfs-e2e-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.removeDir(t, dir) })
	return dir
}

// sharedDir makes a world-traversable directory under sharedPrefix,
// removed safely when the test ends.
func sharedDir(t *testing.T, s *suite, tag string) string {
	t.Helper()
	prefix := sharedPrefix()
	dir, err := os.MkdirTemp(filepath.Dir(prefix), filepath.Base(prefix)+tag+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.removeDir(t, dir) })
	return dir
}

// removeDir unmounts whatever is mounted at or below dir, then removes
// dir, unless a mount remains: then it removes nothing and fails the test.
func (s *suite) removeDir(t *testing.T, dir string) {
	t.Helper()
	for _, mp := range mountsUnder(t, dir) {
		s.cleanupMount(t, mp)
	}
	if left := mountsUnder(t, dir); len(left) > 0 {
		t.Errorf("not removing %s: %s is still mounted (unmount it, then remove the directory by hand)", dir, strings.Join(left, ", "))
		return
	}
	if err := removeOneFS(dir); err != nil {
		t.Errorf("removing %s: %v", dir, err)
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return mountinfoUnder(data, filepath.Clean(dir))
}

func mountinfoUnder(data []byte, dir string) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Deepest first, so an inner mount goes before the one it is in.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// removeOneFS is rm -rf --one-file-system: it removes dir and everything
// below it that is on dir's file system, and never enters another one (a
// mount, dead or alive); such a directory, and those above it, stay, and
// the error names it.
func removeOneFS(dir string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %w", dir, err)
	}
	return removeOn(dir, st.Dev)
}

func removeOn(p string, dev uint64) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %w (not entered)", p, err)
	}
	if st.Dev != dev {
		return fmt.Errorf("%s is on another file system (a mount?): not entered", p)
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		var first error
		for _, e := range ents {
			if err := removeOn(filepath.Join(p, e.Name()), dev); err != nil && first == nil {
				first = err
			}
		}
		if first != nil {
			return first
		}
	}
	return os.Remove(p)
}

// Runs without BUCKETFS_E2E: the clean-up of every mount directory relies
// on them.
func TestMountinfoUnder(t *testing.T) {
	const info = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
101 22 0:50 / /tmp/w/mnt rw - fuse.bucketfs bucketfs rw
102 22 0:51 / /tmp/w/a\040b/deep/er rw - fuse bucketfs rw
103 22 0:52 / /tmp/w2 rw - fuse bucketfs rw
104 22 0:53 / /tmp/w rw - tmpfs tmpfs rw
`
	tests := []struct {
		dir  string
		want []string
	}{
		{"/tmp/w", []string{"/tmp/w/a b/deep/er", "/tmp/w/mnt", "/tmp/w"}},
		{"/tmp/w/mnt", []string{"/tmp/w/mnt"}},
		{"/tmp/w2", []string{"/tmp/w2"}},
		{"/tmp/x", nil},
	}
	for _, tc := range tests {
		got := mountinfoUnder([]byte(info), tc.dir)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("mountinfoUnder(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

// TestRemoveOneFS: everything on the directory's file system goes,
// symbolic links are removed, not followed, and a directory on another
// file system stops it, untouched.
func TestRemoveOneFS(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/b/c", "d", "other/x"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "a/b/c/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "other/x/kept")
	if err := os.WriteFile(kept, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "other"), filepath.Join(dir, "d/link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "d"} {
		if err := removeOneFS(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := ls(t, dir); got != "other" {
		t.Errorf("left: %q, want only other", got)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("the link's target was touched: %v", err)
	}
	// As if "other" were a mount: another device number.
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := removeOn(filepath.Join(dir, "other"), st.Dev+1); err == nil || !strings.Contains(err.Error(), "another file system") {
		t.Errorf("removeOn of a directory on another file system = %v", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("a directory on another file system was entered: %v", err)
	}
}

func ls(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// TestSafeRmScript: scripts/lib.sh's bfs_safe_rm, which scripts/test,
// demo, soak and bench clean up with, removes nothing when a mount below
// the directory cannot be unmounted (here a tmpfs, with fusermount3 and
// umount made to fail), and removes the directory once it is unmounted.
func TestSafeRmScript(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs")
	}
	lib, err := filepath.Abs("../scripts/lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bucketfs-saferm-")
	if err != nil {
		t.Fatal(err)
	}
	mnt, kept, keptInMount := filepath.Join(dir, "mnt"), filepath.Join(dir, "x", "f"), filepath.Join(dir, "mnt", "keep")
	for _, d := range []string{mnt, filepath.Dir(kept)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("none", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		if err := removeOneFS(dir); err != nil {
			t.Error(err)
		}
	})
	for _, f := range []string{kept, keptInMount} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	failing := t.TempDir()
	for _, tool := range []string{"fusermount3", "umount"} {
		if err := os.WriteFile(filepath.Join(failing, tool), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	safeRm := func(path string) (string, error) {
		cmd := exec.Command("bash", "-c", `source "$1" && bfs_safe_rm "$2"`, "bash", lib, dir)
		cmd.Env = append(os.Environ(), "PATH="+path)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := safeRm(failing + ":" + os.Getenv("PATH"))
	if err == nil || !strings.Contains(out, "not removing "+dir) || !strings.Contains(out, mnt) {
		t.Errorf("bfs_safe_rm with a mount it cannot unmount: %v, %q; want a refusal naming %s", err, out, mnt)
	}
	for _, f := range []string{kept, keptInMount} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s removed although a mount was left: %v", f, err)
		}
	}

	if out, err := safeRm(os.Getenv("PATH")); err != nil {
		t.Fatalf("bfs_safe_rm once it can unmount: %v: %s", err, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there: %v", dir, err)
	}
}
