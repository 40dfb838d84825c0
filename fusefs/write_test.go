package fusefs

// Writing through a real mount over the in-memory store. The mount is
// served by a child process (this test binary, re-executed with
// writeServeEnv set), which also answers commands about the store on
// stdin: what an object holds, another writer's put, and faults.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

const (
	writeServeEnv   = "BUCKETFS_FS_WRITE_SERVE"   // mount point
	writeStagingEnv = "BUCKETFS_FS_WRITE_STAGING" // staging directory
	writeModeEnv    = "BUCKETFS_FS_WRITE_MODE"    // a writeMode
	// Staging is small so that ENOSPC is cheap to reach; parts are the
	// smallest S3 allows so a 24 MiB file streams in several.
	testStagingLimit = 40 << 20
	testPartSize     = store.MinPartSize
)

// The serving child runs from init, before TestMain and the colleague's
// serving mode, and never returns.
func init() {
	mp := os.Getenv(writeServeEnv)
	if mp == "" {
		return
	}
	if err := serveWrites(mp, os.Getenv(writeStagingEnv), writeMode(os.Getenv(writeModeEnv))); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

var writeSeed = map[string]string{
	"exist.txt":        "hello world\n",
	"append.txt":       "line 1\n",
	"trunc.txt":        "0123456789",
	"dir/a.txt":        "a",
	"dir/sub/b.txt":    "b",
	"old name.csv":     "x,y\n1,2\n",
	"renamed/one.txt":  "one",
	"renamed/two/2.tx": "two",
	"full/":            "",
	"full/f":           "f",
	"empty/":           "",
}

// writeMode is how the serving child mounts.
type writeMode string

const (
	readWrite   writeMode = "rw"           // deletes guarded (the default)
	allowDelete writeMode = "allow-delete" // --allow-delete
	readOnly    writeMode = "ro"           // no writer
)

func serveWrites(mp, staging string, mode writeMode) error {
	ctx := context.Background()
	mem := memstore.New()
	if err := mem.CreateBucket(ctx, "w"); err != nil {
		return err
	}
	for k, v := range writeSeed {
		if _, err := mem.Put(ctx, "w", k, strings.NewReader(v), int64(len(v))); err != nil {
			return err
		}
	}
	fst := faultstore.New(mem)
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := cache.New(fst, cache.Config{Logger: log})
	cfg := Config{Bucket: "w", UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), FileMode: 0o644, DirMode: 0o755, Logger: log,
		AllowDelete: mode == allowDelete}
	mopts := []string{}
	if mode == readOnly {
		mopts = append(mopts, "ro")
	} else {
		w, _ := c.Writer()
		area, err := stage.Open(stage.Config{Dir: staging, Limit: testStagingLimit, Writer: w, PartSize: testPartSize, Threshold: testPartSize + 1, Logger: log})
		if err != nil {
			return err
		}
		cfg.Writer, cfg.Staging = w, area
	}
	opts := Options(c)
	opts.MountOptions = fuse.MountOptions{
		FsName: "bucketfs-write-test", Name: "bucketfs", Options: mopts,
		DirectMount: os.Geteuid() == 0, DisableXAttrs: true, MaxWrite: 1 << 20,
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
		Debug:             os.Getenv("BUCKETFS_FS_TEST_DEBUG") != "",
	}
	root := New(c, cfg)
	if err := serveUntilSignal(mp, root, opts, func() { writeControl(ctx, mem, fst) }); err != nil {
		return err
	}
	Drain(ctx, root)
	return nil
}

// writeControl answers, one line per command (keys Go-quoted):
//
//	get KEY          -> "ok SIZE SHA256" or "missing"
//	put KEY DATA     -> "ok"   (another writer; DATA Go-quoted)
//	fail OP[,OP...]  -> "ok"   (those operations fail; "none" clears)
//	count OP         -> "ok N"
func writeControl(ctx context.Context, mem *memstore.Store, fst *faultstore.Store) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(writeCommand(ctx, mem, fst, strings.Fields(sc.Text())))
	}
}

func writeCommand(ctx context.Context, mem *memstore.Store, fst *faultstore.Store, f []string) string {
	arg := func(i int) string {
		if i >= len(f) {
			return ""
		}
		s, err := strconv.Unquote(f[i])
		if err != nil {
			return f[i]
		}
		return s
	}
	switch f[0] {
	case "get":
		o, err := mem.Stat(ctx, "w", arg(1))
		if errors.Is(err, store.ErrNotFound) {
			return "missing"
		}
		p := make([]byte, o.Size)
		if _, err := mem.ReadAt(ctx, "w", arg(1), "", p, 0); err != nil && err != io.EOF {
			return "error " + err.Error()
		}
		sum := sha256.Sum256(p)
		return fmt.Sprintf("ok %d %s", o.Size, hex.EncodeToString(sum[:]))
	case "put":
		data := arg(2)
		if _, err := mem.Put(ctx, "w", arg(1), strings.NewReader(data), int64(len(data))); err != nil {
			return "error " + err.Error()
		}
		return "ok"
	case "fail":
		ops := map[string]bool{}
		for _, op := range strings.Split(arg(1), ",") {
			ops[op] = true
		}
		if ops["none"] {
			fst.SetHook(nil)
			return "ok"
		}
		fst.SetHook(func(ctx context.Context, op, bucket, key string) error {
			if ops[op] {
				return fmt.Errorf("injected: the server refuses %s", op)
			}
			return nil
		})
		return "ok"
	case "count":
		return fmt.Sprintf("ok %d", fst.Count(arg(1)))
	}
	return "error bad command"
}

// writeChild is a serving child for the write tests.
// writeChild is a serving child (mount_test.go) with its staging directory.
type writeChild struct {
	*child
	staging string
}

func (c *writeChild) ask(t *testing.T, format string, a ...any) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.in, format+"\n", a...)
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	return strings.TrimSpace(line)
}

// q quotes s as one field of a command line.
func q(s string) string { return strings.ReplaceAll(strconv.Quote(s), " ", `\x20`) }

// object returns what the store holds under key ("" and false if nothing).
func (c *writeChild) object(t *testing.T, key string) (size int64, sum string, ok bool) {
	t.Helper()
	f := strings.Fields(c.ask(t, "get %s", q(key)))
	if f[0] != "ok" {
		return 0, "", false
	}
	size, _ = strconv.ParseInt(f[1], 10, 64)
	return size, f[2], true
}

func (c *writeChild) mustHold(t *testing.T, key string, want []byte) {
	t.Helper()
	size, sum, ok := c.object(t, key)
	h := sha256.Sum256(want)
	if !ok || size != int64(len(want)) || sum != hex.EncodeToString(h[:]) {
		t.Errorf("object %q: size %d (exists %v), want %d bytes %.40q", key, size, ok, len(want), want)
	}
}

func (c *writeChild) count(t *testing.T, op string) int {
	t.Helper()
	n, _ := strconv.Atoi(strings.TrimPrefix(c.ask(t, "count %s", op), "ok "))
	return n
}

func mountWrites(t *testing.T, mode writeMode) *writeChild {
	t.Helper()
	staging := filepath.Join(t.TempDir(), "staging")
	c := startChild(t, func(mp string) []string {
		return []string{writeServeEnv + "=" + mp, writeStagingEnv + "=" + staging, writeModeEnv + "=" + string(mode)}
	})
	return &writeChild{child: c, staging: staging}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func ls(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ls %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func TestWrites(t *testing.T) {
	c := mountWrites(t, allowDelete) // it deletes and renames seeded objects
	p := func(name string) string { return filepath.Join(c.mp, name) }

	t.Run("create", func(t *testing.T) {
		data := []byte("id,value\n1,2.5\n2,3.5\n")
		if err := os.WriteFile(p("new.csv"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "new.csv", data)
		if got := readFile(t, p("new.csv")); got != string(data) {
			t.Errorf("read back %q", got)
		}
		if !strings.Contains(ls(t, c.mp), "new.csv") {
			t.Errorf("ls does not show new.csv: %s", ls(t, c.mp))
		}
		st, err := os.Stat(p("new.csv"))
		if err != nil || st.Size() != int64(len(data)) {
			t.Errorf("stat = %v, %v", st, err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		f, err := os.Create(p("touched"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "touched", nil)
	})
	t.Run("overwrite after read", func(t *testing.T) {
		// Read first so the kernel has pages of the old version.
		if got := readFile(t, p("exist.txt")); got != "hello world\n" {
			t.Fatalf("exist.txt = %q", got)
		}
		if err := os.WriteFile(p("exist.txt"), []byte("HELLO WORLD\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "exist.txt", []byte("HELLO WORLD\n"))
		if got := readFile(t, p("exist.txt")); got != "HELLO WORLD\n" {
			t.Errorf("read after overwrite = %q", got)
		}
	})
	t.Run("write at an offset", func(t *testing.T) {
		f, err := os.OpenFile(p("trunc.txt"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("ab"), 3); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("Z"), 12); err != nil { // past the end: a hole
			t.Fatal(err)
		}
		buf := make([]byte, 20)
		n, _ := f.ReadAt(buf, 0)
		if string(buf[:n]) != "012ab56789\x00\x00Z" {
			t.Errorf("read through the writing handle = %q", buf[:n])
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "trunc.txt", []byte("012ab56789\x00\x00Z"))
	})
	t.Run("append", func(t *testing.T) {
		f, err := os.OpenFile(p("append.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("line 2\n")
		f.WriteString("line 3\n")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "append.txt", []byte("line 1\nline 2\nline 3\n"))
	})
	t.Run("shared mapping", func(t *testing.T) {
		f, err := os.OpenFile(p("mapped.bin"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(8192); err != nil {
			t.Fatal(err)
		}
		m, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if errors.Is(err, syscall.ENODEV) {
			t.Skip("this kernel cannot map a direct-I/O FUSE file shared (FUSE_DIRECT_IO_ALLOW_MMAP needs Linux 6.6)")
		}
		if err != nil {
			t.Fatalf("mmap: %v", err)
		}
		copy(m[4096:], "mapped bytes")
		if err := syscall.Munmap(m); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		want := make([]byte, 8192)
		copy(want[4096:], "mapped bytes")
		c.mustHold(t, "mapped.bin", want)
	})
	t.Run("truncate by path", func(t *testing.T) {
		if err := os.Truncate(p("dir/a.txt"), 0); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "dir/a.txt", nil)
		if st, err := os.Stat(p("dir/a.txt")); err != nil || st.Size() != 0 {
			t.Errorf("stat after truncate = %v, %v", st, err)
		}
	})
	t.Run("fsync uploads, close again", func(t *testing.T) {
		f, err := os.Create(p("synced.txt"))
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("first")
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "synced.txt", []byte("first"))
		f.WriteString(" second")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "synced.txt", []byte("first second"))
	})
	t.Run("mkdir rmdir", func(t *testing.T) {
		if err := os.Mkdir(p("made"), 0o755); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "made/", nil)
		if got := ls(t, p("made")); got != "" {
			t.Errorf("ls made = %q", got)
		}
		if err := os.WriteFile(p("made/f.txt"), []byte("f"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := ls(t, p("made")); got != "f.txt" {
			t.Errorf("ls made = %q", got)
		}
		if err := os.Remove(p("made")); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir of a non-empty dir = %v, want ENOTEMPTY", err)
		}
		if err := os.Remove(p("full")); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir full = %v, want ENOTEMPTY", err)
		}
		if err := os.Remove(p("made/f.txt")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p("made")); err != nil {
			t.Fatalf("rmdir of the emptied dir: %v", err)
		}
		if _, _, ok := c.object(t, "made/"); ok {
			t.Errorf("marker left after rmdir")
		}
		if err := os.Remove(p("empty")); err != nil {
			t.Errorf("rmdir empty: %v", err)
		}
		if strings.Contains(ls(t, c.mp), "made/") || strings.Contains(ls(t, c.mp), "empty/") {
			t.Errorf("removed dirs still listed: %s", ls(t, c.mp))
		}
	})
	t.Run("unlink", func(t *testing.T) {
		if err := os.Remove(p("dir/sub/b.txt")); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := c.object(t, "dir/sub/b.txt"); ok {
			t.Errorf("object still there")
		}
		if _, err := os.Stat(p("dir/sub/b.txt")); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat after rm = %v", err)
		}
	})
	t.Run("rename file", func(t *testing.T) {
		if err := os.Rename(p("old name.csv"), p("dir/new name.csv")); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "dir/new name.csv", []byte("x,y\n1,2\n"))
		if _, _, ok := c.object(t, "old name.csv"); ok {
			t.Errorf("old name still there")
		}
		if got := readFile(t, p("dir/new name.csv")); got != "x,y\n1,2\n" {
			t.Errorf("read renamed = %q", got)
		}
		if strings.Contains(ls(t, c.mp), "old name.csv") || !strings.Contains(ls(t, p("dir")), "new name.csv") {
			t.Errorf("listings after rename: %s | %s", ls(t, c.mp), ls(t, p("dir")))
		}
	})
	t.Run("rename open file", func(t *testing.T) {
		f, err := os.Create(p("tmp-save"))
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("saved")
		if err := os.Rename(p("tmp-save"), p("saved.rds")); err != nil {
			t.Fatal(err)
		}
		f.WriteString(" more")
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "saved.rds", []byte("saved more"))
		if _, _, ok := c.object(t, "tmp-save"); ok {
			t.Errorf("old name still there")
		}
	})
	t.Run("rename dir", func(t *testing.T) {
		ls(t, p("renamed"))
		readFile(t, p("renamed/two/2.tx")) // the kernel knows the inodes below it
		if err := os.Rename(p("renamed"), p("moved")); err != nil {
			t.Fatal(err)
		}
		// Right away, before the kernel has dropped the old entries, the
		// inodes it keeps under the new name read and list the new keys.
		if got := readFile(t, p("moved/two/2.tx")); got != "two" {
			t.Errorf("read under the moved dir right after the rename = %q", got)
		}
		if got := ls(t, p("moved/two")); got != "2.tx" {
			t.Errorf("ls moved/two right after the rename = %q", got)
		}
		c.mustHold(t, "moved/one.txt", []byte("one"))
		c.mustHold(t, "moved/two/2.tx", []byte("two"))
		if _, _, ok := c.object(t, "renamed/one.txt"); ok {
			t.Errorf("old objects still there")
		}
		if got := readFile(t, p("moved/two/2.tx")); got != "two" {
			t.Errorf("read under the moved dir = %q", got)
		}
		if got := ls(t, p("moved")); got != "one.txt two/" {
			t.Errorf("ls moved = %q", got)
		}
	})
	t.Run("streamed large file", func(t *testing.T) {
		data := pseudoRandom(7, 5*testPartSize+1234)
		before := c.count(t, faultstore.OpPutPart)
		f, err := os.Create(p("big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := f.Write(data[off:min(off+1<<20, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c.mustHold(t, "big.bin", data)
		if got := c.count(t, faultstore.OpPutPart) - before; got != 6 {
			t.Errorf("%d parts sent, want 6 (each once)", got)
		}
		got, err := os.ReadFile(p("big.bin"))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("read back of big.bin differs (%d bytes, %v)", len(got), err)
		}
	})
	t.Run("staging full", func(t *testing.T) {
		f, err := os.Create(p("huge.bin"))
		if err != nil {
			t.Fatal(err)
		}
		c.ask(t, "fail Put,PutPart,StartUpload")
		defer c.ask(t, "fail none")
		var werr error
		chunk := make([]byte, 1<<20)
		for i := 0; i < testStagingLimit>>20+2 && werr == nil; i++ {
			_, werr = f.Write(chunk)
		}
		if !errors.Is(werr, syscall.ENOSPC) {
			t.Errorf("write past the staging limit = %v, want ENOSPC", werr)
		}
		c.ask(t, "fail none")
		// The lost bytes were not written again: close says so, and no
		// cut-short object is stored.
		if err := f.Close(); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("close after a lost write = %v, want ENOSPC", err)
		}
		if _, _, ok := c.object(t, "huge.bin"); ok {
			t.Errorf("a cut-short huge.bin was uploaded")
		}
		// The kernel's entry is dropped just after close returns.
		var seen error
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if _, seen = os.Stat(p("huge.bin")); seen != nil {
				break
			}
		}
		if seen == nil {
			t.Errorf("huge.bin is still seen 2s after its close failed")
		}
		os.Remove(p("huge.bin"))
	})
	t.Run("failed upload is kept and retried", func(t *testing.T) {
		c.ask(t, "fail Put")
		data := []byte("precious results\n")
		err := os.WriteFile(p("kept.txt"), data, 0o644)
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("close with the server refusing = %v, want EIO", err)
		}
		if _, _, ok := c.object(t, "kept.txt"); ok {
			t.Errorf("object appeared despite the failure")
		}
		staged, _ := filepath.Glob(filepath.Join(c.staging, "*kept.txt"))
		if len(staged) != 1 || readFile(t, staged[0]) != string(data) {
			t.Fatalf("staged copy = %v", staged)
		}
		if got := readFile(t, p("kept.txt")); got != string(data) {
			t.Errorf("the mount reads %q from the unsent file", got)
		}
		if got := ls(t, c.mp); !strings.Contains(" "+got+" ", " kept.txt ") {
			t.Errorf("the unsent new file is not listed: %q", got)
		}
		c.ask(t, "fail none")
		f, err := os.OpenFile(p("kept.txt"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("retry: %v", err)
		}
		c.mustHold(t, "kept.txt", data)
		// The kernel sends RELEASE, which drops the staged copy, after
		// close(2) has returned: give it a moment.
		var left []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if left, _ = filepath.Glob(filepath.Join(c.staging, "*kept.txt")); len(left) == 0 {
				break
			}
		}
		if len(left) != 0 {
			t.Errorf("staging file left after the upload: %v", left)
		}
	})
	t.Run("failed multipart upload is aborted", func(t *testing.T) {
		c.ask(t, "fail Complete")
		aborts := c.count(t, faultstore.OpAbort)
		data := pseudoRandom(8, 3*testPartSize)
		if err := os.WriteFile(p("mp.bin"), data, 0o644); !errors.Is(err, syscall.EIO) {
			t.Errorf("close = %v, want EIO", err)
		}
		if c.count(t, faultstore.OpAbort) <= aborts {
			t.Errorf("multipart upload not aborted")
		}
		if _, _, ok := c.object(t, "mp.bin"); ok {
			t.Errorf("object appeared")
		}
		c.ask(t, "fail none")
		f, err := os.OpenFile(p("mp.bin"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync retry: %v", err)
		}
		f.Close()
		c.mustHold(t, "mp.bin", data)
	})
	t.Run("conflicting create", func(t *testing.T) {
		f, err := os.OpenFile(p("race.txt"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("mine")
		c.ask(t, "put %s %s", q("race.txt"), q("theirs"))
		if err := f.Close(); !errors.Is(err, syscall.EIO) {
			t.Errorf("close of a create that lost the race = %v, want EIO", err)
		}
		c.mustHold(t, "race.txt", []byte("theirs"))
	})
}

func TestWritesReadOnly(t *testing.T) {
	c := mountWrites(t, readOnly)
	p := func(name string) string { return filepath.Join(c.mp, name) }
	checks := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return os.WriteFile(p("n.txt"), []byte("x"), 0o644) }},
		{"open for write", func() error {
			f, err := os.OpenFile(p("exist.txt"), os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"mkdir", func() error { return os.Mkdir(p("d2"), 0o755) }},
		{"unlink", func() error { return os.Remove(p("exist.txt")) }},
		{"rmdir", func() error { return os.Remove(p("empty")) }},
		{"rename", func() error { return os.Rename(p("exist.txt"), p("e2.txt")) }},
		{"truncate", func() error { return os.Truncate(p("exist.txt"), 0) }},
	}
	for _, ch := range checks {
		if err := ch.do(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", ch.name, err)
		}
	}
	c.mustHold(t, "exist.txt", []byte("hello world\n"))
}
