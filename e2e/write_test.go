package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/internal/faultproxy"
)

// Writing through the mount, checked against what the server holds with
// the suite's own S3 client.

// object returns the bytes the server holds under key.
func (c *s3client) object(t *testing.T, bucket, key string) []byte {
	t.Helper()
	resp, err := c.do(t.Context(), http.MethodGet, bucket, key, nil)
	if err != nil {
		t.Fatalf("GET %s/%s: %v", bucket, key, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sha256 streams the object and returns its SHA-256 and size.
func (c *s3client) sha256(ctx context.Context, bucket, key string) (string, int64, error) {
	resp, err := c.do(ctx, http.MethodGet, bucket, key, nil)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// exists reports whether the server has key (HEAD).
func (c *s3client) exists(t *testing.T, bucket, key string) bool {
	t.Helper()
	resp, err := c.do(t.Context(), http.MethodHead, bucket, key, nil)
	if err != nil {
		if strings.Contains(err.Error(), "404") {
			return false
		}
		t.Fatalf("HEAD %s/%s: %v", bucket, key, err)
	}
	resp.Body.Close()
	return true
}

// rWrite exercises what R users do to save results, listing after each
// step; keep/final.csv stays for the test to compare with a local copy.
const rWrite = `
args <- commandArgs(TRUE); mnt <- args[1]; loc <- args[2]
set.seed(7)
n <- 3000
df <- data.frame(id = seq_len(n), name = sprintf("row-%05d", seq_len(n)),
  x = round(rnorm(n), 6), flag = seq_len(n) %% 4 == 0, stringsAsFactors = FALSE)
res <- file.path(mnt, "results")
stopifnot(dir.create(res), dir.exists(res), "results" %in% list.files(mnt))
write.csv(df, file.path(res, "out.csv"), row.names = FALSE)
stopifnot(identical(list.files(res), "out.csv"))
back <- read.csv(file.path(res, "out.csv"), stringsAsFactors = FALSE)
stopifnot(isTRUE(all.equal(back, df)), identical(back$name, df$name))
model <- lm(x ~ id, data = df)
saveRDS(list(df = df, model = model), file.path(res, "model.rds"))
o <- readRDS(file.path(res, "model.rds"))
stopifnot(identical(o$df, df), isTRUE(all.equal(coef(o$model), coef(model))))
stopifnot(setequal(list.files(res), c("out.csv", "model.rds")))
stopifnot(file.rename(file.path(res, "out.csv"), file.path(res, "final.csv")))
stopifnot(setequal(list.files(res), c("final.csv", "model.rds")), !file.exists(file.path(res, "out.csv")))
writeLines(c("a", "b"), file.path(res, "notes.txt"))
cat("c\n", file = file.path(res, "notes.txt"), append = TRUE)
stopifnot(identical(readLines(file.path(res, "notes.txt")), c("a", "b", "c")))
stopifnot(file.copy(file.path(res, "final.csv"), file.path(res, "copy.csv")))
stopifnot(identical(readLines(file.path(res, "copy.csv")), readLines(file.path(res, "final.csv"))))
unlink(file.path(res, "model.rds"))
stopifnot(!file.exists(file.path(res, "model.rds")))
stopifnot(setequal(list.files(res), c("final.csv", "notes.txt", "copy.csv")))
save(df, file = file.path(res, "ws.RData"))  # writes a temporary file, then renames it
e <- new.env(); load(file.path(res, "ws.RData"), envir = e); stopifnot(identical(e$df, df))
stopifnot(dir.create(file.path(mnt, "keep")))
stopifnot(file.rename(file.path(res, "final.csv"), file.path(mnt, "keep", "final.csv")))
unlink(res, recursive = TRUE)
stopifnot(!dir.exists(res), identical(list.files(mnt), "keep"))
write.csv(df, file.path(loc, "final.csv"), row.names = FALSE)
cat("R-WRITE-OK\n")
`

func TestWriteR(t *testing.T) {
	s := need(t)
	bkt := s.bucket("rwrite")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"README": []byte("x")}})
	if err := s.s3.do0(t, http.MethodDelete, bkt, "README"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	script := filepath.Join(work, "write.R")
	if err := os.WriteFile(script, []byte(rWrite), 0o644); err != nil {
		t.Fatal(err)
	}
	mp := s.mount(t, "s3://"+bkt, "--cache-dir", t.TempDir())
	r := s.exec(t, 5*time.Minute, nil, "Rscript", script, mp, work)
	if r.err != nil || !strings.Contains(r.stdout, "R-WRITE-OK") {
		t.Fatalf("R writing through the mount: %v\n%s%s", r.err, r.stdout, clip(r.stderr))
	}
	t.Logf("R script took %v", r.took.Round(time.Millisecond))
	local, err := os.ReadFile(filepath.Join(work, "final.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.s3.object(t, bkt, "keep/final.csv"); !bytes.Equal(got, local) {
		t.Errorf("keep/final.csv on the server (%d bytes) differs from R's local write.csv (%d bytes)", len(got), len(local))
	}
	for _, gone := range []string{"results/out.csv", "results/model.rds", "results/copy.csv", "results/notes.txt", "results/ws.RData", "results/"} {
		if s.s3.exists(t, bkt, gone) {
			t.Errorf("%s still on the server", gone)
		}
	}
}

// do0 sends a request without a body and discards the answer.
func (c *s3client) do0(t *testing.T, method, bucket, key string) error {
	resp, err := c.do(t.Context(), method, bucket, key, nil)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

func bigSize(t *testing.T) int64 {
	v := os.Getenv("BUCKETFS_E2E_BIG_SIZE")
	if v == "" {
		return 1 << 30
	}
	var n int64
	var unit string
	if _, err := fmt.Sscanf(v, "%d%s", &n, &unit); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("BUCKETFS_E2E_BIG_SIZE=%q: %v", v, err)
	}
	switch strings.ToLower(unit) {
	case "", "b":
	case "kib", "k":
		n <<= 10
	case "mib", "m":
		n <<= 20
	case "gib", "g":
		n <<= 30
	default:
		t.Fatalf("BUCKETFS_E2E_BIG_SIZE=%q: unknown unit", v)
	}
	return n
}

// TestWriteShell: cp of a large file in, dd into the middle of an object,
// mv of files and directories, rm -r.
func TestWriteShell(t *testing.T) {
	s := need(t)
	bkt := s.bucket("shwrite")
	target := pseudoRandom(3, 3<<20)
	tree := map[string][]byte{"dd/target.bin": target}
	for i := range 5 {
		tree[fmt.Sprintf("tree/sub%d/f%d.txt", i%2, i)] = []byte(fmt.Sprintf("file %d\n", i))
	}
	s.seedBuckets(t, map[string]map[string][]byte{bkt: tree})
	// It moves and removes seeded objects: deletes of objects the mount
	// did not write need --allow-delete (deleteguard_test.go has the guard).
	mp := s.mount(t, "s3://"+bkt, "--allow-delete", "--cache-dir", t.TempDir())

	t.Run("cp large file", func(t *testing.T) {
		size := bigSize(t)
		src := filepath.Join(t.TempDir(), "big.bin")
		f, err := os.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for off := int64(0); off < size; off += 16 << 20 {
			chunk := pseudoRandom(uint64(off)+11, int(min(16<<20, size-off)))
			f.Write(chunk)
			h.Write(chunk)
		}
		f.Close()
		want := hex.EncodeToString(h.Sum(nil))
		s.must(t, time.Minute, "mkdir", filepath.Join(mp, "big"))
		r := s.exec(t, 30*time.Minute, nil, "cp", src, filepath.Join(mp, "big", "in.bin"))
		if r.err != nil {
			t.Fatalf("cp: %v: %s", r.err, clip(r.stderr))
		}
		t.Logf("cp of %d MiB into the mount took %v (%.0f MiB/s)", size>>20, r.took.Round(time.Millisecond), float64(size>>20)/r.took.Seconds())
		got, n, err := s.s3.sha256(t.Context(), bkt, "big/in.bin")
		if err != nil || got != want || n != size {
			t.Fatalf("object read back with the S3 client: sha256 %s (%d bytes, %v), want %s (%d bytes)", got, n, err, want, size)
		}
		out := s.must(t, 30*time.Minute, "sha256sum", filepath.Join(mp, "big", "in.bin"))
		if sum, _, _ := strings.Cut(out, " "); sum != want {
			t.Errorf("sha256sum through the mount = %s, want %s", sum, want)
		}
	})
	t.Run("dd into an existing object", func(t *testing.T) {
		patch := bytes.Repeat([]byte("PATCH!"), 4096/6+1)[:4096]
		pf := filepath.Join(t.TempDir(), "patch")
		os.WriteFile(pf, patch, 0o644)
		s.must(t, time.Minute, "dd", "if="+pf, "of="+filepath.Join(mp, "dd", "target.bin"), "bs=4096", "seek=300", "conv=notrunc", "status=none")
		want := append([]byte{}, target...)
		copy(want[300*4096:], patch)
		if got := s.s3.object(t, bkt, "dd/target.bin"); !bytes.Equal(got, want) {
			t.Errorf("object after dd: %d bytes, differs from the patched original", len(got))
		}
	})
	t.Run("mv", func(t *testing.T) {
		s.must(t, time.Minute, "mkdir", filepath.Join(mp, "moved"))
		s.must(t, 10*time.Minute, "mv", filepath.Join(mp, "dd", "target.bin"), filepath.Join(mp, "moved", "t.bin"))
		if s.s3.exists(t, bkt, "dd/target.bin") || !s.s3.exists(t, bkt, "moved/t.bin") {
			t.Errorf("after mv: old name exists %v, new name exists %v", s.s3.exists(t, bkt, "dd/target.bin"), s.s3.exists(t, bkt, "moved/t.bin"))
		}
		s.must(t, 10*time.Minute, "mv", filepath.Join(mp, "tree"), filepath.Join(mp, "tree2"))
		out := s.must(t, time.Minute, "find", filepath.Join(mp, "tree2"), "-type", "f")
		if n := len(lines(out)); n != 5 {
			t.Errorf("find tree2 after mv: %d files, want 5:\n%s", n, out)
		}
		if got := string(s.s3.object(t, bkt, "tree2/sub1/f3.txt")); got != "file 3\n" {
			t.Errorf("tree2/sub1/f3.txt = %q", got)
		}
		if s.s3.exists(t, bkt, "tree/sub1/f3.txt") {
			t.Errorf("tree/ left behind")
		}
	})
	t.Run("rm -r", func(t *testing.T) {
		s.must(t, 10*time.Minute, "rm", "-r", filepath.Join(mp, "tree2"))
		for i := range 5 {
			if k := fmt.Sprintf("tree2/sub%d/f%d.txt", i%2, i); s.s3.exists(t, bkt, k) {
				t.Errorf("%s still there after rm -r", k)
			}
		}
		if _, err := os.Stat(filepath.Join(mp, "tree2")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat tree2 after rm -r: %v", err)
		}
	})
}

// TestWriteFaults: the server refuses the upload (a proxy answering 500 to
// every PUT and POST, then a stopped server): close fails, no object
// appears, the staged bytes stay, and a later close or fsync uploads them.
func TestWriteFaults(t *testing.T) {
	s := need(t)
	bkt := s.bucket("wfault")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"seed.txt": []byte("seed\n")}})
	p := s.startProxy(t, faultproxy.Config{Rate: 0, Seed: 5, Kinds: []faultproxy.Kind{faultproxy.InternalError},
		Methods: []string{http.MethodPut, http.MethodPost}})
	cacheDir := t.TempDir()
	mp := s.mount(t, "s3://"+bkt, "--endpoint-url", p.URL(), "--cache-dir", cacheDir, "--request-timeout", "5s")
	staged := func(name string) []string {
		m, _ := filepath.Glob(filepath.Join(cacheDir, "staging", "*", "*-"+name))
		return m
	}

	t.Run("uploads refused", func(t *testing.T) {
		data := []byte(strings.Repeat("results that must not be lost\n", 1000))
		p.SetRate(1)
		err := os.WriteFile(filepath.Join(mp, "refused.csv"), data, 0o644)
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("write with every upload refused = %v, want EIO from close", err)
		}
		if s.s3.exists(t, bkt, "refused.csv") {
			t.Fatalf("an object appeared although the upload failed")
		}
		files := staged("refused.csv")
		if len(files) != 1 {
			t.Fatalf("staged files = %v, want one", files)
		}
		if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, data) {
			t.Fatalf("staged copy differs")
		}
		p.SetRate(0)
		f, err := os.OpenFile(filepath.Join(mp, "refused.csv"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("reopen the unsent file: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("retry by close: %v", err)
		}
		if got := s.s3.object(t, bkt, "refused.csv"); !bytes.Equal(got, data) {
			t.Errorf("object after the retry differs (%d bytes)", len(got))
		}
		// The kernel sends RELEASE, which drops the staged copy, after
		// close(2) has returned: give it a moment.
		left := staged("refused.csv")
		for deadline := time.Now().Add(5 * time.Second); len(left) != 0 && time.Now().Before(deadline); left = staged("refused.csv") {
			time.Sleep(20 * time.Millisecond)
		}
		if len(left) != 0 {
			t.Errorf("staging file kept after a successful upload: %v", left)
		}
	})
	t.Run("server stopped", func(t *testing.T) {
		data := pseudoRandom(9, 40<<20) // multipart
		f, err := os.Create(filepath.Join(mp, "stopped.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := p.SetOutage(faultproxy.Refuse); err != nil {
			t.Fatal(err)
		}
		err = f.Sync()
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("fsync with the server down = %v, want EIO", err)
		}
		if err := p.SetOutage(faultproxy.Up); err != nil {
			t.Fatal(err)
		}
		if s.s3.exists(t, bkt, "stopped.bin") {
			t.Fatalf("an object appeared although the upload failed")
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync once the server is back: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		got, n, err := s.s3.sha256(t.Context(), bkt, "stopped.bin")
		want := sha256.Sum256(data)
		if err != nil || n != int64(len(data)) || got != hex.EncodeToString(want[:]) {
			t.Errorf("object after the retry: %s, %d bytes, %v", got, n, err)
		}
	})
	t.Run("kept at unmount", func(t *testing.T) {
		p.SetRate(1)
		defer p.SetRate(0)
		if err := os.WriteFile(filepath.Join(mp, "orphan.txt"), []byte("orphan\n"), 0o644); err == nil {
			t.Fatal("write succeeded with every upload refused")
		}
		s.unmount(t, mp)
		files := staged("orphan.txt")
		if len(files) != 1 {
			t.Fatalf("after unmount staged files = %v, want the one that could not be uploaded", files)
		}
		if got, _ := os.ReadFile(files[0]); string(got) != "orphan\n" {
			t.Errorf("kept staging file holds %q", got)
		}
	})
}

// TestWriteReadOnly: --read-only refuses every change.
func TestWriteReadOnly(t *testing.T) {
	s := need(t)
	bkt := s.bucket("wro")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("f\n"), "d/g.txt": []byte("g\n")}})
	mp := s.mount(t, "s3://"+bkt, "--read-only")
	for _, cmd := range [][]string{
		{"touch", filepath.Join(mp, "new.txt")},
		{"mkdir", filepath.Join(mp, "nd")},
		{"rm", filepath.Join(mp, "f.txt")},
		{"mv", filepath.Join(mp, "f.txt"), filepath.Join(mp, "g.txt")},
		{"sh", "-c", "echo x >> " + filepath.Join(mp, "f.txt")},
	} {
		r := s.exec(t, time.Minute, nil, cmd[0], cmd[1:]...)
		if r.err == nil || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("%q on a read-only mount: %v, %q; want Read-only file system", cmd, r.err, r.stderr)
		}
	}
	if got := string(s.s3.object(t, bkt, "f.txt")); got != "f\n" {
		t.Errorf("f.txt changed: %q", got)
	}
}
