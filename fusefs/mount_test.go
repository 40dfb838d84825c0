package fusefs

// These tests mount the file system for real (/dev/fuse) over the in-memory
// store, which holds keys a POSIX-backed server refuses. The mount is
// served by a child process (this test binary re-executed), because a
// process that serves a FUSE mount and also touches it can deadlock.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/store"
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
	if p := os.Getenv(statEnv); p != "" {
		statForTest(p)
		os.Exit(0)
	}
	if mp := os.Getenv(serveEnv); mp != "" {
		if err := serveForTest(mp, os.Getenv(scenarioEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// scenarioEnv names what the serving child mounts (see scenarios).
const scenarioEnv = "BUCKETFS_FS_TEST_SCENARIO"

// scenario is one mounted world: the store's content and the cache's knobs.
// Tests that need others add them to scenarios from their own files' init.
type scenario struct {
	seed  func(ctx context.Context, mem *memstore.Store) error
	cache cache.Config
	// wrap may wrap the store (fault hooks, ETag rewriting).
	wrap func(mem *memstore.Store) store.ObjectStore
	// watch, if set, gives the mount the watchdog, status and metrics of
	// a real one (stuck_test.go).
	watch func(cfg *Config, log *slog.Logger) error
	// plusFiles is Config.PlusFiles (0: the default).
	plusFiles int
}

var scenarios = map[string]scenario{
	"": {seed: seedOdd},
}

func seedOdd(ctx context.Context, mem *memstore.Store) error {
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
	return nil
}

func serveForTest(mp, name string) error {
	ctx := context.Background()
	sc, ok := scenarios[name]
	if !ok {
		return fmt.Errorf("no scenario %q", name)
	}
	mem := memstore.New()
	if err := sc.seed(ctx, mem); err != nil {
		return err
	}
	var st store.ObjectStore = mem
	if sc.wrap != nil {
		st = sc.wrap(mem)
	}
	// Warnings and errors go to stderr as JSON, which the test reads.
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cc := sc.cache
	cc.Logger = log
	c := cache.New(st, cc)
	opts := Options(c)
	opts.MountOptions = fuse.MountOptions{
		FsName: "bucketfs-test", Name: "bucketfs", Options: []string{"ro"},
		DirectMount: os.Geteuid() == 0, DisableXAttrs: true,
		Debug: os.Getenv("BUCKETFS_FS_TEST_DEBUG") != "",
	}
	fcfg := Config{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), FileMode: 0o444, DirMode: 0o555, Logger: log, PlusFiles: sc.plusFiles}
	if sc.watch != nil {
		if err := sc.watch(&fcfg, log); err != nil {
			return err
		}
	}
	root := New(c, fcfg)
	served = root.(*dirNode).fs
	return serveUntilSignal(mp, root, opts, func() { control(ctx, mem) })
}

// serveUntilSignal is the serving child's part once its file system is
// built: it mounts root at mp, says "ready" to the test, runs control (which
// answers the test's commands on stdin) and serves until SIGTERM or SIGINT
// unmounts it.
func serveUntilSignal(mp string, root fs.InodeEmbedder, opts *fs.Options, control func()) error {
	// Catch the signals before saying "ready": a test done within a few
	// milliseconds sends SIGTERM at once, and its default action would
	// leave the mount behind, disconnected.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	server, err := fs.Mount(mp, root, opts)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	go control()
	go func() {
		<-sig
		for server.Unmount() != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	server.Wait()
	return nil
}

// control runs the commands the test sends on stdin, one per line, and
// answers "ok" or "error ..." on stdout:
//
//	put BUCKET KEY SEED SIZE   store pseudoRandom(SEED, SIZE) under KEY
//	delete BUCKET KEY
//	inodes                     answer "ok N T": the file inodes the kernel holds,
//	                           and when it last looked a file up (Unix ns)
//
// Keys are Go-quoted, so any byte can travel.
func control(ctx context.Context, mem *memstore.Store) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "inodes" {
			inodes, lookupAt := served.plus.Stats()
			fmt.Println("ok", inodes, lookupAt)
			continue
		}
		if err := runCommand(ctx, mem, sc.Text()); err != nil {
			fmt.Println("error", err)
			continue
		}
		fmt.Println("ok")
	}
}

func runCommand(ctx context.Context, mem *memstore.Store, line string) error {
	f := strings.Fields(line)
	if len(f) < 3 {
		return fmt.Errorf("bad command %q", line)
	}
	key, err := strconv.Unquote(f[2])
	if err != nil {
		return err
	}
	switch {
	case f[0] == "put" && len(f) == 5:
		seed, err1 := strconv.ParseUint(f[3], 10, 64)
		size, err2 := strconv.Atoi(f[4])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		_, err := mem.Put(ctx, f[1], key, bytes.NewReader(pseudoRandom(seed, size)), int64(size))
		return err
	case f[0] == "delete":
		return mem.Delete(ctx, f[1], key)
	}
	return fmt.Errorf("bad command %q", line)
}

// pseudoRandom returns n deterministic bytes for seed: content that a mix of
// two versions cannot fake.
func pseudoRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 0; i < n; i += 8 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		v := x * 0x2545F4914F6CDD1D
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// served is the FS a serving child serves.
var served *FS

// child is a serving child process.
type child struct {
	mp  string
	log string // path of its stderr (JSON log lines)
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex

	waitOnce sync.Once
	exited   chan struct{} // closed when cmd.Wait returned: the one Wait
}

// wait waits, at most limit, for the child to exit. cmd.Wait is called
// once, whoever asks first (the test or its cleanup).
func (c *child) wait(limit time.Duration) error {
	c.waitOnce.Do(func() { go func() { c.cmd.Wait(); close(c.exited) }() })
	select {
	case <-c.exited:
		return nil
	case <-time.After(limit):
		return os.ErrDeadlineExceeded
	}
}

// do sends one control command and fails the test unless it succeeds.
func (c *child) do(t *testing.T, format string, a ...any) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintf(c.in, format+"\n", a...); err != nil {
		t.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	if strings.TrimSpace(line) != "ok" {
		t.Fatalf("command %q: %q, %v", fmt.Sprintf(format, a...), line, err)
	}
}

// inodes asks the child how many file inodes the kernel holds, and when
// it last looked a file up.
func (c *child) inodes(t *testing.T) (n, lookupAt int64) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintln(c.in, "inodes"); err != nil {
		t.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	if _, err2 := fmt.Sscanf(line, "ok %d %d", &n, &lookupAt); err != nil || err2 != nil {
		t.Fatalf("inodes: %q, %v %v", line, err, err2)
	}
	return n, lookupAt
}

// logLines returns the child's JSON log records so far.
func (c *child) logLines(t *testing.T) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(c.log)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, l := range strings.Split(string(data), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			recs = append(recs, m)
		}
	}
	return recs
}

// alive reports whether the child still runs.
func (c *child) alive() bool {
	return c.cmd.ProcessState == nil && c.cmd.Process.Signal(syscall.Signal(0)) == nil
}

// mountMem starts the serving child for the default scenario and returns
// the mount point.
func mountMem(t *testing.T) string {
	return mountScenario(t, "").mp
}

// mountScenario starts a serving child for the named scenario.
func mountScenario(t *testing.T, name string) *child {
	t.Helper()
	return startChild(t, func(mp string) []string { return []string{serveEnv + "=" + mp, scenarioEnv + "=" + name} })
}

// startChild re-executes this test binary with the environment env(mp)
// returns, which makes it serve a mount at mp, waits until the mount is
// ready, and stops it (and shows its log if the test failed) at cleanup.
// Every FUSE test here mounts through it.
func startChild(t *testing.T, env func(mp string) []string) *child {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("BUCKETFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("/dev/fuse: %v", err)
		}
		t.Skip("no /dev/fuse on this machine")
	}
	c := &child{mp: t.TempDir(), log: filepath.Join(t.TempDir(), "child.log"), exited: make(chan struct{})}
	logF, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logF.Close()
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), env(c.mp)...)
	c.cmd.Stderr = logF
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewReader(out)
	line, _ := c.out.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		c.cmd.Wait()
		logged, _ := os.ReadFile(c.log)
		if os.Getenv("BUCKETFS_REQUIRE_FUSE") != "1" && os.Geteuid() != 0 {
			t.Skip("cannot mount FUSE here")
		}
		t.Fatalf("mount child did not get ready: %q\n%s", line, logged)
	}
	t.Cleanup(func() {
		c.in.Close()
		c.cmd.Process.Signal(syscall.SIGTERM)
		if c.wait(20*time.Second) != nil {
			c.cmd.Process.Kill()
			exec.Command("fusermount3", "-u", "-z", c.mp).Run()
			t.Error("mount child did not exit on SIGTERM")
		}
		if t.Failed() {
			logged, _ := os.ReadFile(c.log)
			if len(logged) > 20000 {
				logged = logged[len(logged)-20000:]
			}
			t.Logf("child log:\n%s", logged)
		}
	})
	return c
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
		"a" + namespace.ShadowSuffix, "a/", "d/", "marker/", "new\nline", "ok/", "pct%20q?star*.txt",
		"plain.txt", "sp ace.csv", "tab\tname", "trailing.", "x/", "ünï.txt",
	}
	sort.Strings(want)
	t.Logf("ls odd: %q", got)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ls odd =\n %q\nwant\n %q", got, want)
	}

	// ls -a shows "." and "..", as every file system does, at the root
	// and below it.
	for _, d := range []string{mp, odd} {
		out, err := exec.Command("ls", "-a1", d).Output()
		if lines := strings.SplitN(string(out), "\n", 3); err != nil || len(lines) < 3 || lines[0] != "." || lines[1] != ".." {
			t.Errorf("ls -a %s = %q, %v; want . and .. first", d, out, err)
		}
	}

	reads := []struct {
		path, want string
	}{
		{"plain.txt", "plain"},
		{"a/b", "under a"},
		{"a" + namespace.ShadowSuffix, "shadowed object"},
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
