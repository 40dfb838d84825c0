package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killDaemon kills the daemon serving mp with SIGKILL, waits until it is
// gone, and checks that the mount point answers "Transport endpoint is not
// connected" to the user who mounted it (run runs a command as that user).
// A plain stat of the mount point may still succeed: the kernel answers it
// from the root's cached attributes.
func killDaemon(t *testing.T, mp string, run func(args ...string) result) {
	t.Helper()
	pid := daemonPID(t, mp)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d still alive 10s after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, cmd := range [][]string{{"ls", mp}, {"stat", "-f", mp}, {"cat", filepath.Join(mp, "f.txt")}} {
		r := run(cmd...)
		// A request the kernel had already queued when the connection died
		// fails with ECONNABORTED; every later one with ENOTCONN.
		if r.err == nil || !(strings.Contains(r.stderr, "Transport endpoint is not connected") ||
			strings.Contains(r.stderr, "Software caused connection abort")) {
			t.Errorf("%s after kill -9 of the daemon: %v %q, want Transport endpoint is not connected",
				strings.Join(cmd, " "), r.err, r.stderr)
		}
	}
	if !isMounted(t, mp) {
		t.Fatalf("%s is no longer in mountinfo after kill -9; want a dead mount", mp)
	}
}

// TestKillDaemon: a daemon killed with SIGKILL leaves a dead mount; bucketfs
// mount on it clears it and mounts again, and bucketfs unmount clears it.
func TestKillDaemon(t *testing.T) {
	s := need(t)
	bkt := s.bucket("kill")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("alive\n")}})
	mp := s.mount(t, "s3://"+bkt)
	asRoot := func(args ...string) result { return s.exec(t, time.Minute, nil, args[0], args[1:]...) }
	killDaemon(t, mp, asRoot)

	// Mount again on the dead mount point, with the same command.
	logFile := filepath.Join(t.TempDir(), "bucketfs.log")
	args := append(append([]string{"mount"}, s.mountOpts(logFile)...), "s3://"+bkt, mp)
	r := s.exec(t, time.Minute, nil, s.bin, args...)
	if r.err != nil {
		t.Fatalf("bucketfs mount on a dead mount point: %v\n%s", r.err, clip(r.stderr))
	}
	if got := s.must(t, time.Minute, "cat", filepath.Join(mp, "f.txt")); got != "alive\n" {
		t.Errorf("cat after remount = %q", got)
	}
	if line := mountLine(t, mp); line == "" {
		t.Fatal("not mounted after remount")
	}

	// Kill again; bucketfs unmount clears the dead mount.
	killDaemon(t, mp, asRoot)
	s.unmount(t, mp)
	if isMounted(t, mp) {
		t.Errorf("%s still mounted after bucketfs unmount of a dead mount", mp)
	}
	if _, err := os.Stat(mp); err != nil {
		t.Errorf("stat %s after clearing the dead mount: %v", mp, err)
	}
}

// TestKillDaemonNonRoot: the same for a mount made by an ordinary user:
// bucketfs mount and bucketfs unmount clear the user's dead mount through
// fusermount3 -u -z.
func TestKillDaemonNonRoot(t *testing.T) {
	s := need(t)
	u := needUsers(t, nonRootUser)[0]
	bkt := s.bucket("killuser")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("user\n")}})
	h := newUserHome(t, s, u)
	mountArgs := append([]string{h.bin, "mount"}, s.mountOpts(filepath.Join(h.dir, "bucketfs.log"))...)
	mountArgs = append(mountArgs, "s3://"+bkt, h.mp)

	for round := 0; round < 2; round++ {
		if r := h.run(t, mountArgs...); r.err != nil {
			t.Fatalf("mount as %s (round %d): %v\n%s", u.name, round, r.err, clip(r.stderr))
		}
		if r := h.run(t, "cat", filepath.Join(h.mp, "f.txt")); r.err != nil || r.stdout != "user\n" {
			t.Fatalf("cat as %s = %q, %v", u.name, r.stdout, r.err)
		}
		killDaemon(t, h.mp, func(args ...string) result { return h.run(t, args...) })
		// Round 0: the next mount clears the dead mount; round 1: unmount.
	}
	if r := h.run(t, h.bin, "unmount", h.mp); r.err != nil {
		t.Fatalf("unmount of a dead mount as %s: %v\n%s", u.name, r.err, clip(r.stderr))
	}
	if !waitUnmounted(t, h.mp, 5*time.Second) {
		t.Errorf("%s still mounted after unmount as %s", h.mp, u.name)
	}
}
