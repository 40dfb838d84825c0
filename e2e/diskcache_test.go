package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bucketfs/bucketfs/internal/faultproxy"
	"github.com/bucketfs/bucketfs/metrics"
)

// sha256Of is the SHA-256 of a file read through the mount, by sha256sum.
func (s *suite) sha256Of(t *testing.T, path string) string {
	t.Helper()
	out := s.must(t, 5*time.Minute, "sha256sum", path)
	sum, _, _ := strings.Cut(out, " ")
	return sum
}

// forgetPages drops the kernel's cached pages of a file, so the next read
// reaches the daemon.
func forgetPages(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// diskStatus is the disk cache's part of the mount's status.
func (s *suite) diskStatus(t *testing.T, mp string) metrics.DiskSnapshot {
	t.Helper()
	var st metrics.Snapshot
	if err := json.Unmarshal([]byte(s.must(t, 30*time.Second, "cat", filepath.Join(mp, ".bucketfs", "status.json"))), &st); err != nil {
		t.Fatal(err)
	}
	if st.Disk == nil {
		t.Fatal("status has no disk cache")
	}
	return *st.Disk
}

// waitWritten waits until the disk cache of mp has written n bytes.
func (s *suite) waitWritten(t *testing.T, mp string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		d := s.diskStatus(t, mp)
		if d.BytesWritten >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("disk cache wrote %d bytes, want %d: %+v", d.BytesWritten, n, d)
		}
	}
}

// blockFiles lists the block files below dir.
func blockFiles(t *testing.T, dir string) (files []string, bytes int64) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && filepath.Base(filepath.Dir(p)) != filepath.Base(dir) {
			files = append(files, p)
			bytes += fi.Size()
		}
		return nil
	})
	return files, bytes
}

// unmountedLog returns the log of a mount just unmounted, once it holds
// its last line (the daemon writes it after the kernel let go).
func unmountedLog(t *testing.T, path string) string {
	t.Helper()
	var data []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if data, _ = os.ReadFile(path); strings.Contains(string(data), "msg=unmounted") {
			break
		}
	}
	return string(data)
}

// lineWith is the first line of text holding s.
func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// unmountGone unmounts mp and waits for its daemon to exit: it writes
// the blocks still queued, and holds the disk cache directory, after the
// kernel has let go of the mount, so a remount over the same directory
// at once would be refused as a second mount.
func (s *suite) unmountGone(t *testing.T, mp string) {
	t.Helper()
	pid := daemonPID(t, mp)
	s.unmount(t, mp)
	for deadline := time.Now().Add(30 * time.Second); processAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d of %s alive 30s after unmount", pid, mp)
		}
	}
}

// TestDiskCache: blocks read or written land on disk and serve later
// reads with no GET: past the memory cache, after a remount; a replaced
// object is read anew; damaged block files are refetched; a second mount
// of the same directory and an unsafe directory are refused.
func TestDiskCache(t *testing.T) {
	s := need(t)
	bkt := s.bucket("disk")
	sums := s.seedRandom(t, bkt+"/a.bin:6MiB")
	dir := filepath.Join(t.TempDir(), "blocks")
	flags := []string{"--disk-cache", dir, "--cache-size", "2MiB"}
	get := func(mark int64) int { return s.log.count(t, mark, bkt)["GetObject"] }

	mp := s.mount(t, "s3://"+bkt, flags...)
	a := filepath.Join(mp, "a.bin")
	if got := s.sha256Of(t, a); got != sums["a.bin"] {
		t.Fatalf("first read: sha256 %s, want %s", got, sums["a.bin"])
	}
	s.waitWritten(t, mp, 6<<20)

	t.Run("second pass from disk", func(t *testing.T) {
		forgetPages(t, a)
		mark := s.log.mark(t)
		if got := s.sha256Of(t, a); got != sums["a.bin"] {
			t.Fatalf("sha256 %s", got)
		}
		if n := get(mark); n != 0 {
			t.Errorf("second pass of a file 3x the memory cache sent %d GETs", n)
		}
	})

	// One PutObject, and (past the 16 MiB threshold) a multipart upload.
	written, multi := pseudoRandom(5, 3<<20+17), pseudoRandom(6, 18<<20+5)
	wsum, msum := sha256.Sum256(written), sha256.Sum256(multi)
	t.Run("written files land on disk", func(t *testing.T) {
		s.writeReadBack(t, mp, bkt, map[string][]byte{"w.bin": written, "m.bin": multi})
	})

	t.Run("second mount of the directory refused", func(t *testing.T) {
		mp2 := s.mountDir(t)
		args := append([]string{"mount"}, s.mountOpts(filepath.Join(t.TempDir(), "log"))...)
		args = append(args, "--disk-cache", dir, "s3://"+bkt, mp2)
		r := s.exec(t, time.Minute, nil, s.bin, args...)
		want := "disk cache directory " + dir + " is in use by another bucketfs mount (pid "
		if r.err == nil || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "give each mount its own --disk-cache directory") {
			t.Errorf("second mount: %v, stderr %q; want %q", r.err, r.stderr, want)
		}
		if isMounted(t, mp2) {
			s.cleanupMount(t, mp2)
			t.Error("second mount mounted")
		}
	})

	// Remounted at once, as a restart does: the new daemon waits for the
	// old one to finish writing its queue and let go of the directory.
	s.unmount(t, mp)

	t.Run("remount reads from disk", func(t *testing.T) {
		log := s.mountAt(t, mp, "s3://"+bkt, flags...)
		mark := s.log.mark(t)
		readMiddle(t, filepath.Join(mp, "w.bin"), written)
		if got := s.sha256Of(t, a); got != sums["a.bin"] {
			t.Fatalf("a.bin after remount: sha256 %s", got)
		}
		if got := s.sha256Of(t, filepath.Join(mp, "w.bin")); got != hex.EncodeToString(wsum[:]) {
			t.Fatalf("w.bin after remount: sha256 %s", got)
		}
		if got := s.sha256Of(t, filepath.Join(mp, "m.bin")); got != hex.EncodeToString(msum[:]) {
			t.Fatalf("m.bin (multipart) after remount: sha256 %s", got)
		}
		if n := get(mark); n != 0 {
			t.Errorf("reads after a remount sent %d GETs", n)
		}
		if d := s.diskStatus(t, mp); d.Hits < 10 || d.Errors != 0 || d.Off != "" {
			t.Errorf("disk status %+v", d)
		}
		s.unmountGone(t, mp)
		if line := lineWith(unmountedLog(t, log), "msg=unmounted"); !strings.Contains(line, " disk_hits=") || !strings.Contains(line, " disk_errors=0") {
			t.Errorf("unmount log line lacks the disk cache: %q", line)
		}
	})

	t.Run("damaged block files refetched", func(t *testing.T) {
		files, _ := blockFiles(t, dir)
		if len(files) < 9 {
			t.Fatalf("%d block files", len(files))
		}
		b, _ := os.ReadFile(files[0])
		b[len(b)/2] ^= 0x20
		os.WriteFile(files[0], b, 0o600)
		os.Truncate(files[1], 100)
		s.mountAt(t, mp, "s3://"+bkt, flags...)
		mark := s.log.mark(t)
		if got := s.sha256Of(t, a); got != sums["a.bin"] {
			t.Fatalf("a.bin: sha256 %s", got)
		}
		if got := s.sha256Of(t, filepath.Join(mp, "w.bin")); got != hex.EncodeToString(wsum[:]) {
			t.Fatalf("w.bin: sha256 %s", got)
		}
		if got := s.sha256Of(t, filepath.Join(mp, "m.bin")); got != hex.EncodeToString(msum[:]) {
			t.Fatalf("m.bin: sha256 %s", got)
		}
		if n := get(mark); n == 0 {
			t.Error("damaged blocks were not fetched again")
		}
		if d := s.diskStatus(t, mp); d.Errors != 2 {
			t.Errorf("disk status %+v, want 2 errors", d)
		}
		s.unmountGone(t, mp)
	})

	t.Run("replaced object read anew", func(t *testing.T) {
		other := pseudoRandom(9, 6<<20)
		if err := s.s3.put(context.Background(), bkt, "a.bin", other); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(other)
		s.mountAt(t, mp, "s3://"+bkt, flags...)
		mark := s.log.mark(t)
		if got := s.sha256Of(t, a); got != hex.EncodeToString(want[:]) {
			t.Fatalf("replaced a.bin: sha256 %s, want the new bytes' %x", got, want)
		}
		if n := get(mark); n == 0 {
			t.Error("replaced object served with no GET")
		}
		s.unmountGone(t, mp)
	})

	t.Run("network file system warned about", func(t *testing.T) {
		// Another bucketfs mount is a user-space file system, like sshfs:
		// the daemon sees it through statfs, as it would NFS.
		outer := s.mount(t, "s3://"+bkt)
		args := append([]string{"mount"}, s.mountOpts(filepath.Join(t.TempDir(), "log"))...)
		args = append(args, "--read-only", "--disk-cache", filepath.Join(outer, "cachedir"), "s3://"+bkt, mp)
		r := s.exec(t, time.Minute, nil, s.bin, args...)
		if r.err != nil {
			t.Fatalf("mount: %v %s", r.err, r.stderr)
		}
		defer s.unmount(t, mp)
		if !strings.Contains(r.stderr, "warning: disk cache directory "+filepath.Join(outer, "cachedir")+" is on a network file system (fuse") ||
			!strings.Contains(r.stderr, "use a local directory such as /var/tmp/bucketfs-$USER") {
			t.Errorf("no warning for a disk cache on a user-space file system: %q", r.stderr)
		}
	})

	t.Run("unsafe directory refused", func(t *testing.T) {
		open := filepath.Join(t.TempDir(), "open")
		os.Mkdir(open, 0o700)
		os.Chmod(open, 0o777)
		args := append([]string{"mount"}, s.mountOpts(filepath.Join(t.TempDir(), "log"))...)
		args = append(args, "--disk-cache", open, "s3://"+bkt, mp)
		r := s.exec(t, time.Minute, nil, s.bin, args...)
		want := "disk cache directory " + open + " is writable by others (mode 0777): chmod 700 " + open
		if r.err == nil || !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("mount on an open directory: %v, stderr %q; want one line with %q", r.err, r.stderr, want)
		}
		if isMounted(t, mp) {
			s.cleanupMount(t, mp)
			t.Error("mounted on an unsafe directory")
		}
	})
}

// writeReadBack writes files (name: bytes) into mp and reads each back
// at once, its pages dropped first: they must come from the disk cache,
// with no GET.
func (s *suite) writeReadBack(t *testing.T, mp, bkt string, files map[string][]byte) {
	t.Helper()
	local := t.TempDir()
	for name, data := range files {
		// Written by cp, as a user would.
		if err := os.WriteFile(filepath.Join(local, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s.must(t, time.Minute, "cp", filepath.Join(local, name), filepath.Join(mp, name))
		forgetPages(t, filepath.Join(mp, name))
	}
	mark := s.log.mark(t)
	for name, data := range files {
		// First a read in the middle: one that has not earned whole
		// blocks, as a READ past the start that the kernel sends
		// first under load (it used to GET the bytes exactly).
		readMiddle(t, filepath.Join(mp, name), data)
		want := sha256.Sum256(data)
		if got := s.sha256Of(t, filepath.Join(mp, name)); got != hex.EncodeToString(want[:]) {
			t.Fatalf("read back %s: sha256 %s", name, got)
		}
	}
	var gets []string
	for _, r := range s.log.requests(t, mark, bkt) {
		if _, ours := files[r.key]; ours && r.op == "GetObject" {
			gets = append(gets, r.key)
		}
	}
	if len(gets) != 0 {
		t.Errorf("reading back files just written sent %d GETs: %v", len(gets), gets)
	}
}

// readMiddle reads 4 KiB from the middle of path, its first read since
// its pages were dropped, and checks them against data.
func readMiddle(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(len(data)) / 2 &^ 4095
	got := make([]byte, 4096)
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[off:off+4096]) {
		t.Fatalf("%s at %d: other bytes", path, off)
	}
}

// TestDiskCacheWriteReadBack: files read back the moment their close
// returns come from the disk cache, round after round (a read racing the
// blocks' way to the disk shows only some of the time), while a reader
// of another object keeps the daemon and the disk busy.
func TestDiskCacheWriteReadBack(t *testing.T) {
	s := need(t)
	bkt := s.bucket("diskwrb")
	s.seedRandom(t, bkt+"/busy.bin:64MiB")
	dir := filepath.Join(t.TempDir(), "blocks")
	mp := s.mountDir(t)
	s.mountAt(t, mp, "s3://"+bkt, "--disk-cache", dir, "--cache-size", "4MiB")
	// The daemon writes its last blocks after the kernel lets go of the
	// mount: dir (a TempDir) is removed only once it has exited.
	pid := daemonPID(t, mp)
	t.Cleanup(func() {
		s.cleanupMount(t, mp)
		for deadline := time.Now().Add(30 * time.Second); processAlive(pid) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	})
	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Not t's helpers: this goroutine must not end the test.
			if f, err := os.Open(filepath.Join(mp, "busy.bin")); err == nil {
				_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				_, _ = io.Copy(io.Discard, f)
				f.Close()
			}
		}
	}()
	defer func() { close(stop); <-busy }()
	for round := range 8 {
		s.writeReadBack(t, mp, bkt, map[string][]byte{
			fmt.Sprintf("w%d.bin", round): pseudoRandom(uint64(50+round), 3<<20+17),
			fmt.Sprintf("m%d.bin", round): pseudoRandom(uint64(60+round), 18<<20+5),
		})
	}
}

// TestDiskCacheBoundAndKill: the disk cache stays under its size, and a
// daemon killed with SIGKILL while filling it leaves nothing that is
// served wrong.
func TestDiskCacheBoundAndKill(t *testing.T) {
	s := need(t)
	bkt := s.bucket("diskkill")
	sums := s.seedRandom(t, bkt+"/big.bin:24MiB")
	dir := filepath.Join(t.TempDir(), "blocks")

	// GETs of the first 4 MiB go through (their blocks land on disk as
	// one file); every later one stalls after 1.5 MiB (its blocks wait
	// for the rest of the run, the writers may be mid-file), and the
	// daemon is killed meanwhile.
	p := s.startProxy(t, faultproxy.Config{Rate: 1, Kinds: []faultproxy.Kind{faultproxy.Stall}, AfterBytes: 3 << 19, StallFor: 20 * time.Second,
		Match: func(r *http.Request) bool {
			var start int64
			_, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
			return r.Method == http.MethodGet && err == nil && start >= 4<<20
		}})
	mp := s.mount(t, "s3://"+bkt, "--endpoint-url", p.URL(), "--disk-cache", dir, "--stall-timeout", "10s")
	done := make(chan result, 1)
	go func() { done <- s.exec(t, time.Minute, nil, "cat", filepath.Join(mp, "big.bin")) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		files, _ := blockFiles(t, dir)
		if slices.ContainsFunc(files, func(f string) bool { return !strings.Contains(filepath.Base(f), ".tmp") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no block reached the disk cache")
		}
	}
	pid := daemonPID(t, mp)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	for deadline := time.Now().Add(10 * time.Second); processAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d alive after SIGKILL", pid)
		}
	}

	// Remounted (the dead mount cleared, the directory's lock gone with the
	// daemon) with a bound smaller than the object.
	s.mountAt(t, mp, "s3://"+bkt, "--disk-cache", dir, "--disk-cache-size", "16MiB")
	if got := s.sha256Of(t, filepath.Join(mp, "big.bin")); got != sums["big.bin"] {
		t.Fatalf("read after kill -9: sha256 %s, want %s", got, sums["big.bin"])
	}
	d := s.diskStatus(t, mp)
	if d.Errors != 0 || d.Hits == 0 {
		t.Errorf("disk status %+v: want the blocks of the killed fill served, none damaged", d)
	}
	for deadline := time.Now().Add(30 * time.Second); d.Evictions == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d = s.diskStatus(t, mp)
	}
	s.unmount(t, mp)
	files, n := blockFiles(t, dir)
	if d.Evictions == 0 || n > 16<<20 || d.Bytes > 16<<20 {
		t.Errorf("disk cache over its 16 MiB bound: %d files, %d bytes; %+v", len(files), n, d)
	}
	for _, f := range files {
		if strings.Contains(filepath.Base(f), ".tmp") {
			t.Errorf("temporary file left: %s", f)
		}
	}
}

// TestDiskCacheFull: a disk cache on a full file system turns itself off,
// says so, and every read still returns the object's bytes.
func TestDiskCacheFull(t *testing.T) {
	s := need(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	bkt := s.bucket("diskfull")
	sums := s.seedRandom(t, bkt+"/a.bin:6MiB")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	mp := s.mountDir(t)
	logFile := filepath.Join(t.TempDir(), "bucketfs.log")
	args := append([]string{"mount"}, s.mountOpts(logFile)...)
	args = append(args, "--disk-cache", dir, "--disk-cache-size", "64MiB", "s3://"+bkt, mp)
	t.Cleanup(func() { s.cleanupMount(t, mp) })
	r := s.exec(t, time.Minute, nil, s.bin, args...)
	if r.err != nil {
		t.Fatalf("mount: %v %s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: disk cache directory "+dir+" has ") || !strings.Contains(r.stderr, "MiB free, less than --disk-cache-size 64 MiB: the disk cache stops when the disk fills") {
		t.Errorf("mount did not warn of the small disk: %q", r.stderr)
	}
	for range 2 {
		if got := s.sha256Of(t, filepath.Join(mp, "a.bin")); got != sums["a.bin"] {
			t.Fatalf("read on a full disk cache: sha256 %s", got)
		}
		forgetPages(t, filepath.Join(mp, "a.bin"))
	}
	var d metrics.DiskSnapshot
	for deadline := time.Now().Add(10 * time.Second); d.Off == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d = s.diskStatus(t, mp)
	}
	if !strings.Contains(d.Off, "no space left on device") {
		t.Errorf("disk cache still on after the disk filled: %+v", d)
	}
	status := s.must(t, 30*time.Second, s.bin, "status", mp)
	if !strings.Contains(status, "OFF: no space left on device") {
		t.Errorf("bucketfs status does not say the disk cache is off:\n%s", status)
	}
	s.unmount(t, mp)
	if n := strings.Count(unmountedLog(t, logFile), "disk cache off"); n != 1 {
		t.Errorf("%d log lines say the disk cache is off, want 1", n)
	}
}
