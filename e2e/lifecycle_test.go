package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// foreground is a `bucketfs mount --foreground` started by startForeground.
type foreground struct {
	cmd     *exec.Cmd
	done    chan error // cmd.Wait's result
	stderr  *bytes.Buffer
	logFile string
}

// startForeground starts `bucketfs mount --foreground s3://bkt mp` with
// the suite's options and env plus extraEnv, logging to a file of its own.
func (s *suite) startForeground(t *testing.T, bkt, mp string, extraEnv ...string) *foreground {
	t.Helper()
	f := &foreground{done: make(chan error, 1), stderr: new(bytes.Buffer), logFile: filepath.Join(t.TempDir(), "bucketfs.log")}
	args := append([]string{"mount", "--foreground"}, s.mountOpts(f.logFile)...)
	f.cmd = exec.Command(s.bin, append(args, "s3://"+bkt, mp)...)
	f.cmd.Env = append(append([]string{}, s.env...), extraEnv...)
	f.cmd.Stderr = f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- f.cmd.Wait() }()
	return f
}

// TestForegroundSIGTERM: with --foreground the process is the daemon; SIGTERM
// must unmount cleanly and exit 0.
func TestForegroundSIGTERM(t *testing.T) {
	s := need(t)
	bkt := s.bucket("fg")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("foreground\n")}})
	mp := s.mountDir(t)
	fg := s.startForeground(t, bkt, mp)
	cmd, done, stderr, logFile := fg.cmd, fg.done, fg.stderr, fg.logFile
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		s.cleanupMount(t, mp)
		if t.Failed() {
			logTail(t, logFile)
		}
	})

	start := time.Now()
	for !isMounted(t, mp) {
		select {
		case err := <-done:
			t.Fatalf("bucketfs mount --foreground exited before mounting: %v\n%s", err, clip(stderr.String()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("not mounted after a minute")
		}
	}
	t.Logf("mounted in foreground after %v", time.Since(start).Round(time.Millisecond))
	if got := s.must(t, time.Minute, "cat", filepath.Join(mp, "f.txt")); got != "foreground\n" {
		t.Errorf("cat = %q", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0\n%s", err, clip(stderr.String()))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM")
	}
	if isMounted(t, mp) {
		t.Errorf("%s still mounted after SIGTERM", mp)
	}
}

// TestSIGTERMAtMount: a SIGTERM that comes the moment the mount appears
// (systemd stopping a unit just started, a quick `bucketfs unmount`) still
// unmounts cleanly and exits 0: the daemon never leaves a disconnected
// mount behind.
func TestSIGTERMAtMount(t *testing.T) {
	s := need(t)
	bkt := s.bucket("fgterm")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("x\n")}})
	for i := range 5 {
		mp := s.mountDir(t)
		fg := s.startForeground(t, bkt, mp)
		cmd, done, stderr, logFile := fg.cmd, fg.done, fg.stderr, fg.logFile
		// Poll tightly and signal at once: the mount exists as soon as
		// the kernel's INIT is answered, before the daemon's Mount returns.
		var exited bool
		for deadline := time.Now().Add(time.Minute); !isMounted(t, mp) && !exited; {
			select {
			case <-done:
				exited = true
			default:
				if time.Now().After(deadline) {
					t.Fatalf("run %d: not mounted after a minute", i)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		if exited {
			t.Fatalf("run %d: exited before mounting\n%s", i, clip(stderr.String()))
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run %d: after SIGTERM at mount: %v, want exit 0\n%s", i, err, clip(stderr.String()))
			}
		case <-time.After(30 * time.Second):
			// A daemon killed with a request to its own mount in flight
			// never exits: abort the connection so it can.
			t.Errorf("run %d: still running 30s after SIGTERM (mounted: %v)", i, isMounted(t, mp))
			s.exec(t, 30*time.Second, nil, s.bin, "unmount", "--force", mp)
			_ = cmd.Process.Kill()
			<-done
		}
		if isMounted(t, mp) {
			t.Errorf("run %d: %s left mounted after SIGTERM", i, mp)
		}
		s.cleanupMount(t, mp)
		if t.Failed() {
			logTail(t, logFile)
			return
		}
	}
}

const nonRootUser = "bucketfs-test"

// TestNonRootUser: an ordinary user mounts through the setuid fusermount3,
// reads a file and unmounts. As root the test runs the commands as
// bucketfs-test (created if missing) through runuser.
func TestNonRootUser(t *testing.T) {
	s := need(t)
	bkt := s.bucket("user")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"hello.txt": []byte("hello, user\n")}})

	uid, gid := os.Getuid(), os.Getgid()
	var prefix []string // runs a command as the test user
	if uid == 0 {
		u, err := user.Lookup(nonRootUser)
		if err != nil {
			out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
				"--shell", "/usr/sbin/nologin", nonRootUser).CombinedOutput()
			if err != nil {
				t.Fatalf("useradd %s: %v: %s", nonRootUser, err, out)
			}
			if u, err = user.Lookup(nonRootUser); err != nil {
				t.Fatal(err)
			}
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		prefix = []string{"runuser", "-u", nonRootUser, "--"}
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		t.Fatalf("/dev/fuse must be mode 0666 for non-root mounts (scripts/lib.sh sets it): %v", fi.Mode())
	}

	// A world-traversable directory (sharedDir: scripts/test unmounts
	// what its run leaves there), with a copy of the binary the user can
	// run wherever the checkout is.
	dir := sharedDir(t, s, "nonroot")
	mp := filepath.Join(dir, "mnt")
	t.Cleanup(func() {
		s.cleanupMount(t, mp)
		if t.Failed() {
			logTail(t, filepath.Join(dir, "bucketfs.log"))
		}
	})
	bin := filepath.Join(dir, "bucketfs")
	copyFile(t, s.bin, bin, 0o755)
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, mp} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	// runuser keeps the caller's environment; the user's must not point at
	// root's files.
	env := []string{"HOME=" + dir}
	runAs := func(args ...string) result {
		all := append(append([]string{}, prefix...), args...)
		return s.exec(t, time.Minute, env, all[0], all[1:]...)
	}

	mountArgs := append([]string{bin, "mount"}, s.mountOpts(filepath.Join(dir, "bucketfs.log"))...)
	r := runAs(append(mountArgs, "s3://"+bkt, mp)...)
	if r.err != nil {
		t.Fatalf("mount as %s: %v\n%s", nonRootUser, r.err, clip(r.stderr))
	}
	if !isMounted(t, mp) {
		t.Fatalf("mount as %s exited 0 but %s is not a mount", nonRootUser, mp)
	}
	// The kernel records who mounted a FUSE file system.
	if opts := mountLine(t, mp); !strings.Contains(opts, fmt.Sprintf("user_id=%d,", uid)) {
		t.Errorf("mount of %s is not owned by uid %d: %s", mp, uid, opts)
	}
	r = runAs("cat", filepath.Join(mp, "hello.txt"))
	if r.err != nil || r.stdout != "hello, user\n" {
		t.Errorf("cat as %s = %q, %v: %s", nonRootUser, r.stdout, r.err, clip(r.stderr))
	}
	r = runAs(bin, "unmount", mp)
	if r.err != nil {
		t.Fatalf("unmount as %s: %v\n%s", nonRootUser, r.err, clip(r.stderr))
	}
	if !waitUnmounted(t, mp, 5*time.Second) {
		t.Errorf("%s still mounted after unmount as %s", mp, nonRootUser)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}
