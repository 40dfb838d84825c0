package fs

// These tests mount the file system for real (/dev/fuse) over the in-memory
// store, which holds keys a POSIX-backed server refuses. The mount is
// served by a child process (this test binary re-executed), because a
// process that serves a FUSE mount and also touches it can deadlock.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store/memstore"
)

const serveEnv = "BUCKETFS_FS_TEST_SERVE"

// oddKeys are keys S3 accepts that make awkward or impossible file names.
var oddKeys = map[string]string{
	"plain.txt":                      "plain",
	"a":                              "shadowed object",
	"a/b":                            "under a",
	"sp ace.csv":                     "space",
	"ünï.txt":                        "unicode",
	"pct%20q?star*.txt":              "punct",
	"tab\tname":                      "tab",
	"new\nline":                      "newline",
	"trailing.":                      "dot",
	"marker/":                        "",
	"//lead":                         "empty segments",
	"x//y":                           "double slash",
	"../escape":                      "dotdot",
	"./here":                         "dot",
	"d/../up":                        "dotdot inside",
	strings.Repeat("n", 300):         "too long",
	"ok/" + strings.Repeat("m", 255): "longest allowed",
}

func TestMain(m *testing.M) {
	if mp := os.Getenv(serveEnv); mp != "" {
		if err := serveForTest(mp); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func serveForTest(mp string) error {
	ctx := context.Background()
	mem := memstore.New()
	for _, b := range []string{"odd", "locked"} {
		if err := mem.CreateBucket(ctx, b); err != nil {
			return err
		}
	}
	for k, v := range oddKeys {
		if _, err := mem.Put(ctx, "odd", k, strings.NewReader(v), int64(len(v))); err != nil {
			return err
		}
	}
	mem.Put(ctx, "locked", "secret.txt", strings.NewReader("no"), 2)
	mem.SetAccessDenied("locked", true)

	c := cache.New(mem, cache.Config{})
	opts := Options(c)
	opts.MountOptions = fuse.MountOptions{
		FsName: "bucketfs-test", Name: "bucketfs", Options: []string{"ro"},
		DirectMount: os.Geteuid() == 0, DisableXAttrs: true,
	}
	server, err := gofs.Mount(mp, New(c, Config{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), FileMode: 0o444, DirMode: 0o555}), opts)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		for server.Unmount() != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	server.Wait()
	return nil
}

// mountMem starts the serving child and returns the mount point.
func mountMem(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("BUCKETFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("/dev/fuse: %v", err)
		}
		t.Skip("no /dev/fuse on this machine")
	}
	mp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+mp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Wait()
		if os.Getenv("BUCKETFS_REQUIRE_FUSE") != "1" && os.Geteuid() != 0 {
			t.Skip("cannot mount FUSE here")
		}
		t.Fatalf("mount child did not get ready: %q", line)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			exec.Command("fusermount3", "-u", "-z", mp).Run()
			t.Error("mount child did not exit on SIGTERM")
		}
	})
	return mp
}

func TestMountOddKeys(t *testing.T) {
	mp := mountMem(t)
	odd := filepath.Join(mp, "odd")

	ents, err := os.ReadDir(odd)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		got = append(got, n)
	}
	sort.Strings(got)
	want := []string{
		"a" + ShadowSuffix, "a/", "d/", "marker/", "new\nline", "ok/", "pct%20q?star*.txt",
		"plain.txt", "sp ace.csv", "tab\tname", "trailing.", "x/", "ünï.txt",
	}
	sort.Strings(want)
	t.Logf("ls odd: %q", got)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ls odd =\n %q\nwant\n %q", got, want)
	}

	reads := []struct {
		path, want string
	}{
		{"plain.txt", "plain"},
		{"a/b", "under a"},
		{"a" + ShadowSuffix, "shadowed object"},
		{"sp ace.csv", "space"},
		{"ünï.txt", "unicode"},
		{"new\nline", "newline"},
		{"trailing.", "dot"},
		{"ok/" + strings.Repeat("m", 255), "longest allowed"},
	}
	for _, r := range reads {
		b, err := os.ReadFile(filepath.Join(odd, r.path))
		if err != nil || string(b) != r.want {
			t.Errorf("read %q = %q, %v; want %q", r.path, b, err, r.want)
		}
	}

	// Names that cannot be shown are not reachable, and nothing escapes.
	for _, p := range []string{"escape", "here", "up", "lead", strings.Repeat("n", 300)} {
		if _, err := os.Stat(filepath.Join(odd, p)); err == nil {
			t.Errorf("%q is reachable", p)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(odd, "x")); err != nil || len(ents) != 0 {
		t.Errorf("x/ (holding only x//y) = %v, %v; want empty", ents, err)
	}
	if ents, err := os.ReadDir(filepath.Join(odd, "marker")); err != nil || len(ents) != 0 {
		t.Errorf("marker/ = %v, %v; want an empty directory", ents, err)
	}

	st, err := os.Stat(filepath.Join(odd, "plain.txt"))
	if err != nil || st.Size() != 5 || st.Mode().Perm() != 0o444 {
		t.Errorf("stat plain.txt = %v, %v", st, err)
	}
}

func TestMountBucketsAndErrors(t *testing.T) {
	mp := mountMem(t)
	ents, err := os.ReadDir(mp)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "locked,odd" {
		t.Errorf("root = %v, want locked, odd", got)
	}
	// A bucket we may not read: EACCES there only.
	if _, err := os.ReadDir(filepath.Join(mp, "locked")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("ls locked err = %v, want EACCES", err)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "odd", "plain.txt")); err != nil {
		t.Errorf("other bucket broken after EACCES: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mp, "no-such-bucket")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a missing bucket err = %v, want ENOENT", err)
	}
	// Read-only.
	err = os.WriteFile(filepath.Join(mp, "odd", "new.txt"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("create err = %v, want EROFS", err)
	}
	if err := os.Mkdir(filepath.Join(mp, "odd", "newdir"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir err = %v, want EROFS", err)
	}
	f, err := os.OpenFile(filepath.Join(mp, "odd", "plain.txt"), os.O_WRONLY, 0)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for write err = %v, want EROFS", err)
	}
	if f != nil {
		f.Close()
	}
	// mmap works (data.table::fread maps the file).
	mf, err := os.Open(filepath.Join(mp, "odd", "plain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	data, err := syscall.Mmap(int(mf.Fd()), 0, 5, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if !bytes.Equal(data, []byte("plain")) {
		t.Errorf("mmap = %q", data)
	}
	syscall.Munmap(data)
}
