package e2e

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperPath is where mount(8) looks for the helper of type bucketfs; it
// looks nowhere else (/sbin, /sbin/fs.d, /sbin/fs), so the test has to put
// it there.
const helperPath = "/sbin/mount.bucketfs"

// installHelper links /sbin/mount.bucketfs to the binary under test for
// the test's duration. An existing helper that is something else (an
// installed bucketfs) is left alone and the test skipped.
func installHelper(t *testing.T, bin string) {
	t.Helper()
	if target, err := os.Readlink(helperPath); err == nil {
		if target == bin {
			return
		}
		// Left by an earlier run that died: its binary is gone with its
		// temporary directory.
		if _, err := os.Stat(helperPath); err != nil && filepath.Base(target) == "bucketfs" {
			_ = os.Remove(helperPath)
		}
	}
	if _, err := os.Lstat(helperPath); err == nil {
		t.Skipf("%s exists and is not a link to %s (an installed bucketfs?); not replacing it", helperPath, bin)
	}
	if err := os.Symlink(bin, helperPath); err != nil {
		t.Fatalf("installing the mount helper: %v", err)
	}
	t.Cleanup(func() {
		if target, err := os.Readlink(helperPath); err == nil && target == bin {
			if err := os.Remove(helperPath); err != nil {
				t.Errorf("removing %s: %v", helperPath, err)
			}
		}
	})
}

// needMount checks what the fstab tests need from the host: root (mount(8)
// runs helpers for root only, unless fstab says "user") and util-linux's
// mount with --fstab (-T).
func needMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the fstab tests run mount(8) and need root (CI runs scripts/test as root)")
	}
	out, err := exec.Command("mount", "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "util-linux") {
		t.Fatalf("mount --version: %v: %s; want util-linux's mount (it has -T/--fstab)", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

// TestFstabHelper mounts through mount(8) as an administrator would: with
// mount -t, with an fstab line (mount -T FSTAB MOUNTPOINT, mount -a), the
// all-buckets source, and umount; and checks that bad lines fail with one
// clear line and leave nothing mounted.
func TestFstabHelper(t *testing.T) {
	s := need(t)
	needMount(t)
	installHelper(t, s.bin)

	bkt := s.bucket("fstab")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {
		"top.txt":            []byte("top of the bucket\n"),
		"data/2024/part.csv": []byte("x,y\n1,2\n"),
	}})
	server := "endpoint=" + s.endpoint + ",path_style,region=" + s.region

	// mountCmd runs mount(8) and registers the cleanup of mp.
	mountCmd := func(t *testing.T, mp string, args ...string) result {
		t.Helper()
		t.Cleanup(func() { s.cleanupMount(t, mp) })
		r := s.exec(t, time.Minute, nil, "mount", args...)
		t.Logf("mount %s: exit %d after %v %s", strings.Join(args, " "), exitCode(r.err), r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
		return r
	}
	umount := func(t *testing.T, mp string) {
		t.Helper()
		r := s.exec(t, 30*time.Second, nil, "umount", mp)
		if r.err != nil {
			t.Fatalf("umount %s: %v: %s", mp, r.err, r.stderr)
		}
		if !waitUnmounted(t, mp, 5*time.Second) {
			t.Fatalf("umount %s exited 0 but it is still mounted", mp)
		}
	}
	readFile := func(t *testing.T, p, want string) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("read %s = %q, %v; want %q", p, got, err, want)
		}
	}

	t.Run("mount -t", func(t *testing.T) {
		mp := s.mountDir(t)
		logFile := filepath.Join(t.TempDir(), "bucketfs.log")
		r := mountCmd(t, mp, "-t", "bucketfs", "-o", "ro,"+server+",file_mode=0440,log_file="+logFile, "s3://"+bkt, mp)
		if r.err != nil {
			logTail(t, logFile)
			t.Fatalf("mount -t bucketfs: %v\n%s", r.err, clip(r.stderr))
		}
		line := mountLine(t, mp)
		if !strings.Contains(line, " fuse.bucketfs s3://"+bkt+"/ ") {
			t.Errorf("mountinfo line %q: want type fuse.bucketfs and source s3://%s/", line, bkt)
		}
		readFile(t, filepath.Join(mp, "top.txt"), "top of the bucket\n")
		if fi, err := os.Stat(filepath.Join(mp, "top.txt")); err != nil || fi.Mode().Perm() != 0o440 {
			t.Errorf("stat top.txt: %v, %v; want mode 0440 from file_mode", fi.Mode(), err)
		}
		umount(t, mp)
		// The daemon notices the unmount and ends cleanly.
		deadline := time.Now().Add(5 * time.Second)
		for {
			log, _ := os.ReadFile(logFile)
			if strings.Contains(string(log), "msg=unmounted") {
				break
			}
			if time.Now().After(deadline) {
				logTail(t, logFile)
				t.Fatalf("the daemon did not log its unmount")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("fstab line", func(t *testing.T) {
		mp := s.mountDir(t)
		logFile := filepath.Join(t.TempDir(), "bucketfs.log")
		fstab := filepath.Join(t.TempDir(), "fstab")
		line := "s3://" + bkt + "/data/2024 " + mp + " bucketfs _netdev,nofail,ro," + server +
			",x-systemd.mount-timeout=30,log_file=" + logFile + " 0 0\n"
		if err := os.WriteFile(fstab, []byte("# test fstab\n"+line), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := mountCmd(t, mp, "-T", fstab, mp); r.err != nil {
			logTail(t, logFile)
			t.Fatalf("mount -T %s %s: %v\n%s", fstab, mp, r.err, clip(r.stderr))
		}
		readFile(t, filepath.Join(mp, "part.csv"), "x,y\n1,2\n")
		// mount -a must see the line as mounted (the kernel shows the
		// source with a trailing "/", which mount(8) ignores).
		r := s.exec(t, time.Minute, nil, "mount", "-a", "-v", "-T", fstab)
		if r.err != nil || !strings.Contains(r.stdout+r.stderr, "already mounted") {
			t.Errorf("mount -a -T %s: %v\nstdout: %s\nstderr: %s; want \"already mounted\"", fstab, r.err, r.stdout, r.stderr)
		}
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(data), " "+mp+" "); n != 1 {
			t.Errorf("%s is mounted %d times after mount -a, want once", mp, n)
		}
		umount(t, mp)
	})

	t.Run("all buckets", func(t *testing.T) {
		mp := s.mountDir(t)
		logFile := filepath.Join(t.TempDir(), "bucketfs.log")
		if r := mountCmd(t, mp, "-t", "bucketfs", "-o", "ro,"+server+",log_file="+logFile, "bucketfs", mp); r.err != nil {
			logTail(t, logFile)
			t.Fatalf("mount -t bucketfs bucketfs %s: %v\n%s", mp, r.err, clip(r.stderr))
		}
		if !strings.Contains(mountLine(t, mp), " fuse.bucketfs bucketfs ") {
			t.Errorf("mountinfo line %q: want source bucketfs", mountLine(t, mp))
		}
		readFile(t, filepath.Join(mp, bkt, "top.txt"), "top of the bucket\n")
		umount(t, mp)
	})

	failures := []struct {
		name   string
		opts   string
		source string
		code   int // mount(8) passes the helper's exit code on
		want   string
	}{
		{name: "unknown option", opts: "ro,frobnicate=yes," + server, source: "s3://" + bkt, code: 1,
			want: `mount.bucketfs: unknown option "frobnicate=yes": valid options are ro, rw, allow_other, allow_delete, uid=`},
		{name: "staging too small", opts: "rw,staging_size=10," + server, source: "s3://" + bkt, code: 1,
			want: "mount.bucketfs: --staging-size 10 is too small"},
		{name: "bad value", opts: "ro,cache_size=huge," + server, source: "s3://" + bkt, code: 1,
			want: "mount.bucketfs: option cache_size=huge"},
		{name: "not a source", opts: "ro," + server, source: "my-bucket", code: 1,
			want: `mount.bucketfs: source "my-bucket": want s3://BUCKET[/PREFIX], or bucketfs`},
		{name: "missing bucket", opts: "ro," + server, source: "s3://" + s.bucket("absent"), code: 32,
			want: "does not exist"},
	}
	for _, tc := range failures {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			mp := s.mountDir(t)
			// A log file of its own: as root the helper's default is
			// /var/log/bucketfs.
			logFile := filepath.Join(t.TempDir(), "bucketfs.log")
			r := mountCmd(t, mp, "-t", "bucketfs", "-o", tc.opts+",log_file="+logFile, tc.source, mp)
			if got := exitCode(r.err); got != tc.code {
				t.Errorf("exit %d (%v), want %d", got, r.err, tc.code)
			}
			msg := strings.TrimRight(r.stderr, "\n")
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("stderr %q: want one line containing %q", r.stderr, tc.want)
			}
			if isMounted(t, mp) {
				t.Errorf("%s is mounted after a refused mount", mp)
			}
		})
	}
}

// TestSystemdNotify runs the mount the way bucketfs@.service does (Type=notify,
// --foreground) with a stand-in for systemd's notify socket: READY=1 must
// come once the mount answers, and SIGTERM (systemctl stop) must unmount.
func TestSystemdNotify(t *testing.T) {
	s := need(t)
	bkt := s.bucket("notify")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("ready\n")}})

	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	mp := s.mountDir(t)
	fg := s.startForeground(t, bkt, mp, "NOTIFY_SOCKET="+sock)
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

	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no message on NOTIFY_SOCKET: %v\n%s", err, clip(stderr.String()))
	}
	msg := string(buf[:n])
	if !strings.HasPrefix(msg, "READY=1\n") && msg != "READY=1" {
		t.Errorf("notify message %q, want READY=1 first", msg)
	}
	// Ready means ready: no waiting for the mount to appear.
	if !isMounted(t, mp) {
		t.Fatalf("READY=1 sent but %s is not mounted", mp)
	}
	if got, err := os.ReadFile(filepath.Join(mp, "f.txt")); err != nil || string(got) != "ready\n" {
		t.Errorf("read after READY=1 = %q, %v", got, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Errorf("bucketfs exited with %v after SIGTERM, want 0\n%s", err, clip(stderr.String()))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("bucketfs still running 30s after SIGTERM")
	}
	if !waitUnmounted(t, mp, 5*time.Second) {
		t.Errorf("%s still mounted after SIGTERM", mp)
	}
}

// TestInstallScript installs into temporary directories twice (an upgrade
// must work), checks what landed where, checks the unit with systemd-analyze
// when the host has it, and uninstalls twice, leaving nothing.
func TestInstallScript(t *testing.T) {
	s := need(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prefix, helperDir, unitDir := filepath.Join(dir, "usr"), filepath.Join(dir, "sbin"), filepath.Join(dir, "systemd")
	if err := os.Mkdir(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []string{"--prefix", prefix, "--helper-dir", helperDir, "--systemd-dir", unitDir}
	bin := filepath.Join(prefix, "bin", "bucketfs")
	unit := filepath.Join(unitDir, "bucketfs@.service")
	installed := []string{bin, filepath.Join(helperDir, "mount.bucketfs"), unit,
		filepath.Join(prefix, "share", "bucketfs", "bucketfs-example.env")}

	for i := 0; i < 2; i++ {
		r := s.exec(t, time.Minute, nil, filepath.Join(root, "scripts", "install"), append([]string{"--binary", s.bin}, opts...)...)
		if r.err != nil {
			t.Fatalf("install (run %d): %v\n%s%s", i+1, r.err, r.stdout, r.stderr)
		}
	}
	for _, p := range installed {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	if target, err := os.Readlink(filepath.Join(helperDir, "mount.bucketfs")); err != nil || target != bin {
		t.Errorf("helper links to %q (%v), want %s", target, err, bin)
	}
	if out, err := exec.Command(filepath.Join(helperDir, "mount.bucketfs"), "s3://b", "/mnt/x", "-f", "-o", "ro,bogus").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), `unknown option "bogus"`) {
		t.Errorf("installed helper with a bad option: %v: %s", err, out)
	}
	unitText, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unitText), "ExecStart="+bin+" mount --foreground ") {
		t.Errorf("installed unit does not run %s:\n%s", bin, unitText)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		// verify wants an instance; it checks keys, values and that the
		// binaries exist.
		inst := filepath.Join(t.TempDir(), "bucketfs@test.service")
		if err := os.WriteFile(inst, unitText, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", inst).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze not installed; unit not verified")
	}

	for i := 0; i < 2; i++ {
		r := s.exec(t, time.Minute, nil, filepath.Join(root, "scripts", "uninstall"), opts...)
		if r.err != nil {
			t.Fatalf("uninstall (run %d): %v\n%s%s", i+1, r.err, r.stdout, r.stderr)
		}
	}
	for _, p := range append(installed, filepath.Join(prefix, "share", "bucketfs")) {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after uninstall %s: %v, want it gone", p, err)
		}
	}
}
