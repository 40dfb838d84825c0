package fusefs

// The control directory through a real mount: a serving child (this test
// binary, re-executed with controlServeEnv set) mounts one of the root
// kinds over the in-memory store, with a Status that counts its calls.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/memstore"
)

const (
	controlServeEnv   = "BUCKETFS_FS_CONTROL_SERVE"   // mount point
	controlKindEnv    = "BUCKETFS_FS_CONTROL_KIND"    // a key of controlKinds
	controlStagingEnv = "BUCKETFS_FS_CONTROL_STAGING" // staging directory
	// The owner the mount gives everything: not the test's, so the
	// control directory is seen to take the configured one.
	controlUID, controlGID = 4321, 8765
	// statusLines makes the text span several FUSE reads (128 KiB each).
	statusLines = 8000
)

// controlKinds are the roots a mount can have, and one without a status.
var controlKinds = map[string]Config{
	"buckets":  {},
	"bucket":   {Bucket: "bkt"},
	"prefix":   {Bucket: "bkt", Prefix: "data/"},
	"nostatus": {Bucket: "bkt"},
}

// controlSeed holds keys named .bucketfs at the root of the bucket and of
// the prefix: the control directory shadows them.
var controlSeed = []string{
	"x.txt", "dir/y.txt", ".bucketfs", ".bucketfs/real.txt",
	"data/x.txt", "data/dir/y.txt", "data/.bucketfs", "data/.bucketfs/real.txt",
}

func init() {
	mp := os.Getenv(controlServeEnv)
	if mp == "" {
		return
	}
	if err := serveControl(mp, os.Getenv(controlKindEnv), os.Getenv(controlStagingEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// testStatus is the text and JSON of the opens'th call: a first line that
// counts the calls, then statusLines numbered lines, so a reader can tell
// a whole copy from a cut one and a fresh one from an old one.
func testStatus(opens int64) (text, js []byte) {
	var b strings.Builder
	fmt.Fprintf(&b, "open %d\n", opens)
	for i := range statusLines {
		fmt.Fprintf(&b, "line %05d of the status\n", i)
	}
	js, _ = json.Marshal(map[string]any{"open": opens, "text": b.String()})
	return []byte(b.String()), append(js, '\n')
}

func serveControl(mp, kind, staging string) error {
	ctx := context.Background()
	cfg, ok := controlKinds[kind]
	if !ok {
		return fmt.Errorf("no kind %q", kind)
	}
	mem := memstore.New()
	if err := mem.CreateBucket(ctx, "bkt"); err != nil {
		return err
	}
	for _, k := range controlSeed {
		if _, err := mem.Put(ctx, "bkt", k, strings.NewReader(k), int64(len(k))); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := cache.New(mem, cache.Config{Logger: log})
	w, _ := c.Writer()
	area, err := stage.Open(stage.Config{Dir: staging, Limit: testStagingLimit, Writer: w, PartSize: testPartSize, Threshold: testPartSize + 1, Logger: log})
	if err != nil {
		return err
	}
	cfg.UID, cfg.GID, cfg.FileMode, cfg.DirMode, cfg.Logger = controlUID, controlGID, 0o644, 0o755, log
	cfg.Writer, cfg.Staging = w, area
	if kind != "nostatus" {
		var opens atomic.Int64
		cfg.Status = func() (text, js []byte) { return testStatus(opens.Add(1)) }
	}
	opts := Options(c)
	opts.MountOptions = fuse.MountOptions{
		FsName: "bucketfs-control-test", Name: "bucketfs", Options: []string{"default_permissions"},
		DirectMount: os.Geteuid() == 0, DisableXAttrs: true,
		Debug: os.Getenv("BUCKETFS_FS_TEST_DEBUG") != "",
	}
	// "keys" answers the bucket's keys, sorted, on one line.
	return serveUntilSignal(mp, New(c, cfg), opts, func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			page, err := mem.List(ctx, store.ListInput{Bucket: "bkt"})
			var keys []string
			for _, o := range page.Objects {
				keys = append(keys, strconv.Quote(o.Key))
			}
			sort.Strings(keys)
			fmt.Println(strings.Join(keys, " "), err)
		}
	})
}

func mountControl(t *testing.T, kind string) *child {
	t.Helper()
	staging := filepath.Join(t.TempDir(), "staging")
	return startChild(t, func(mp string) []string {
		return []string{controlServeEnv + "=" + mp, controlKindEnv + "=" + kind, controlStagingEnv + "=" + staging}
	})
}

// keys asks the child for the bucket's keys.
func (c *child) keys(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintln(c.in, "keys")
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// checkStatus checks that text is one whole status and returns its count.
func checkStatus(t *testing.T, who, text string) int64 {
	t.Helper()
	first, rest, _ := strings.Cut(text, "\n")
	n, err := strconv.ParseInt(strings.TrimPrefix(first, "open "), 10, 64)
	if err != nil {
		t.Fatalf("%s: first line %q", who, first)
	}
	if want, _ := testStatus(n); text != string(want) {
		t.Fatalf("%s: %d bytes, %d lines after the first; want %d bytes, %d lines", who, len(text), strings.Count(rest, "\n"), len(want), statusLines)
	}
	return n
}

// TestControlDir: at the root of each kind of mount, .bucketfs is found
// by name but never listed (and shadows real keys of that name), holds
// the status whole and fresh at each open for every way of reading it,
// and refuses every change; without a status there is none.
func TestControlDir(t *testing.T) {
	for _, kind := range []string{"buckets", "bucket", "prefix"} {
		t.Run(kind, func(t *testing.T) {
			c := mountControl(t, kind)
			mp := c.mp
			ctl := filepath.Join(mp, namespace.ControlDir)
			status, statusJSON := filepath.Join(ctl, namespace.StatusFile), filepath.Join(ctl, namespace.StatusJSONFile)

			// Found by lookup, with the configured owner and read-only modes.
			for _, p := range []struct {
				path string
				mode os.FileMode
			}{{ctl, os.ModeDir | 0o555}, {status, 0o444}, {statusJSON, 0o444}, {filepath.Join(ctl, namespace.RefreshFile), 0o222}} {
				fi, err := os.Stat(p.path)
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if fi.Mode() != p.mode || st.Uid != controlUID || st.Gid != controlGID {
					t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", p.path, fi.Mode(), st.Uid, st.Gid, p.mode, controlUID, controlGID)
				}
			}
			if got := ls(t, ctl); got != "refresh status status.json" {
				t.Errorf("ls .bucketfs = %q", got)
			}
			if _, err := os.Stat(filepath.Join(ctl, "real.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the real key .bucketfs/real.txt shows through: %v", err)
			}

			// Never listed: not by readdir, ls -a or find.
			wantRoot := map[string]string{"buckets": "bkt/", "bucket": "data/ dir/ x.txt", "prefix": "dir/ x.txt"}[kind]
			if got := ls(t, mp); got != wantRoot {
				t.Errorf("ls %s = %q, want %q", mp, got, wantRoot)
			}
			// (data/.bucketfs of the bucket mount is a real prefix, not
			// at the root.)
			for _, cmd := range [][]string{{"ls", "-a", mp}, {"find", mp}, {"ls", "-la", mp}} {
				out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
				if err != nil {
					t.Errorf("%q: %v\n%s", cmd, err, out)
				}
				for _, line := range strings.Split(string(out), "\n") {
					rel := strings.TrimPrefix(line, mp+"/")
					if strings.HasSuffix(line, " "+namespace.ControlDir) || line == namespace.ControlDir || strings.HasPrefix(rel, namespace.ControlDir+"/") ||
						rel == namespace.ControlDir || rel == namespace.ControlDir+":" {
						t.Errorf("%q shows %q", cmd, line)
					}
				}
			}
			if out, _ := exec.Command("find", mp).Output(); !strings.Contains(string(out), "x.txt") {
				t.Errorf("find %s: %s", mp, out)
			}

			// Whole and fresh for each reader.
			last := int64(0)
			read := func(who string, text string) {
				t.Helper()
				if n := checkStatus(t, who, text); n <= last {
					t.Errorf("%s read open %d after open %d: not fresh", who, n, last)
				} else {
					last = n
				}
			}
			read("os.ReadFile", readFile(t, status))
			read("os.ReadFile again", readFile(t, status))
			if out, err := exec.Command("cat", status).Output(); err != nil {
				t.Errorf("cat: %v", err)
			} else {
				read("cat", string(out))
			}
			if out, err := exec.Command("head", "-n", strconv.Itoa(statusLines+1), status).Output(); err != nil {
				t.Errorf("head: %v", err)
			} else {
				read("head", string(out))
			}
			if py, err := exec.LookPath("python3"); err == nil {
				out, err := exec.Command(py, "-c", "import sys; sys.stdout.write(open(sys.argv[1]).read())", status).Output()
				if err != nil {
					t.Errorf("python3: %v", err)
				} else {
					read("python3 open().read()", string(out))
				}
			}
			if r, err := exec.LookPath("Rscript"); err == nil {
				out, err := exec.Command(r, "-e", `writeLines(readLines(commandArgs(TRUE)[1]))`, status).Output()
				if err != nil {
					t.Errorf("Rscript: %v", err)
				} else {
					read("R readLines", string(out))
				}
			}
			var doc struct {
				Open int64  `json:"open"`
				Text string `json:"text"`
			}
			if err := json.Unmarshal([]byte(readFile(t, statusJSON)), &doc); err != nil {
				t.Fatalf("status.json: %v", err)
			}
			read("status.json", doc.Text)

			// One open is one snapshot, read in small pieces at any offset.
			f, err := os.Open(status)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			buf := make([]byte, 1000)
			for {
				n, err := f.Read(buf)
				b.Write(buf[:n])
				if err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
			read("1000-byte reads", b.String())
			num := strconv.FormatInt(last, 10)
			if n, err := f.ReadAt(buf[:len(num)], int64(len("open "))); err != nil || string(buf[:n]) != num {
				t.Errorf("ReadAt after the open: %q, %v; want %q", buf[:n], err, num)
			}
			f.Close()

			// Every change is refused, and nothing reaches the store.
			// (syscall.Rename: os.Rename refuses by itself to rename over
			// a directory.)
			keys := c.keys(t)
			file := map[string]string{"buckets": "bkt/x.txt", "bucket": "x.txt", "prefix": "x.txt"}[kind]
			dir := map[string]string{"buckets": "bkt", "bucket": "dir", "prefix": "dir"}[kind]
			at := func(p string) string { return filepath.Join(mp, p) }
			for _, op := range []struct {
				name string
				do   func() error
			}{
				{"open O_WRONLY", func() error { return openClose(status, os.O_WRONLY) }},
				{"open O_RDWR", func() error { return openClose(status, os.O_RDWR) }},
				{"open O_TRUNC", func() error { return openClose(status, os.O_RDONLY|os.O_TRUNC) }},
				{"open O_APPEND", func() error { return openClose(statusJSON, os.O_WRONLY|os.O_APPEND) }},
				{"truncate", func() error { return os.Truncate(status, 0) }},
				{"chmod file", func() error { return os.Chmod(status, 0o666) }},
				{"chmod dir", func() error { return os.Chmod(ctl, 0o777) }},
				{"create in", func() error { return os.WriteFile(filepath.Join(ctl, "new"), []byte("x"), 0o644) }},
				{"mkdir in", func() error { return os.Mkdir(filepath.Join(ctl, "d"), 0o755) }},
				{"symlink in", func() error { return os.Symlink("x", filepath.Join(ctl, "l")) }},
				{"link in", func() error { return os.Link(status, filepath.Join(ctl, "l")) }},
				{"unlink file", func() error { return syscall.Unlink(status) }},
				{"rmdir", func() error { return syscall.Rmdir(ctl) }},
				{"rename the dir", func() error { return syscall.Rename(ctl, at("moved")) }},
				{"rename a dir over it", func() error { return syscall.Rename(at(dir), ctl) }},
				{"rename a file out", func() error { return syscall.Rename(status, at("s")) }},
				{"rename a file in", func() error { return syscall.Rename(at(file), filepath.Join(ctl, "x.txt")) }},
			} {
				if err := op.do(); !errors.Is(err, syscall.EPERM) {
					t.Errorf("%s: %v, want EPERM", op.name, err)
				}
			}
			if got := c.keys(t); got != keys {
				t.Errorf("the store changed:\n%s\nwas\n%s", got, keys)
			}
			checkStatus(t, "after the refusals", readFile(t, status))
			if _, err := os.Stat(at(file)); err != nil {
				t.Error(err)
			}
		})
	}

	// Without a status, the name is an ordinary one: the real prefix.
	t.Run("nostatus", func(t *testing.T) {
		mp := mountControl(t, "nostatus").mp
		if got := ls(t, mp); got != ".bucketfs.bucketfs-file .bucketfs/ data/ dir/ x.txt" {
			t.Errorf("ls = %q", got)
		}
		if got := ls(t, filepath.Join(mp, namespace.ControlDir)); got != "real.txt" {
			t.Errorf("ls .bucketfs = %q", got)
		}
	})
}

func openClose(p string, flag int) error {
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		return err
	}
	return f.Close()
}
