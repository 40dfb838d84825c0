package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/store/s3"
)

// The data: large objects read sequentially and at random, small files in
// directories that are walked, CSV files for R, and "hot" objects that are
// overwritten through the S3 API while they are read.
const (
	bigCount   = 4
	bigSize    = 48 << 20
	hotCount   = 4
	hotSize    = 2 << 20
	sameCount  = 4
	sameSize   = 1 << 20
	smallDirs  = 20
	smallFiles = 50
	csvCount   = 8
	csvRows    = 20000
)

func bigKey(i int) string          { return fmt.Sprintf("big/big%d.bin", i) }
func hotKey(i int) string          { return fmt.Sprintf("hot/h%d.bin", i) }
func sameKey(i int) string         { return fmt.Sprintf("same/s%d.bin", i) }
func sameContent(i int) content    { return content{seed: uint64(2000 + i), size: sameSize} }
func smallKey(d, f int) string     { return fmt.Sprintf("small/d%02d/f%03d.txt", d, f) }
func smallContent(d, f int) []byte { return []byte(smallKey(d, f) + "\n") }
func csvKey(i int) string          { return fmt.Sprintf("csv/part%d.csv", i) }

// content is size deterministic bytes for seed that can be made and
// checked at any offset: word i is splitmix64(seed, i).
type content struct {
	seed uint64
	size int64
}

func word(seed uint64, i int64) uint64 {
	z := seed + uint64(i+1)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (c content) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), c.size-off))
	for k := 0; k < n; {
		pos := off + int64(k)
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], word(c.seed, pos/8))
		k += copy(p[k:n], w[pos%8:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// matches reports whether p is the content at off.
func (c content) matches(p []byte, off int64) bool {
	want := make([]byte, len(p))
	n, _ := c.ReadAt(want, off)
	return n == len(p) && bytes.Equal(p, want)
}

func bigContent(i int) content { return content{seed: uint64(1000 + i), size: bigSize} }

// hotVersion is version v of hot object i: v in its first 8 bytes, then
// bytes of its own, so a reader can tell a whole version from a mix.
type hotVersion struct {
	c content
	v uint64
}

func newHot(i int, v uint64) hotVersion {
	return hotVersion{c: content{seed: uint64(i)<<32 | v, size: hotSize}, v: v}
}

func (h hotVersion) ReadAt(p []byte, off int64) (int, error) {
	n, err := h.c.ReadAt(p, off)
	for k := 0; k < n && off+int64(k) < 8; k++ {
		var v [8]byte
		binary.LittleEndian.PutUint64(v[:], h.v)
		p[k] = v[off+int64(k)]
	}
	return n, err
}

func csvData(i int) []byte {
	var b bytes.Buffer
	b.WriteString("id,part,value\n")
	for r := 0; r < csvRows; r++ {
		fmt.Fprintf(&b, "%d,%d,%d\n", r, i, word(uint64(i), int64(r))%1000000)
	}
	return b.Bytes()
}

func seed(ctx context.Context, st *s3.Store) error {
	if err := st.CreateBucket(ctx, bucket); err != nil {
		return err
	}
	type put struct {
		key  string
		body io.ReaderAt
		size int64
	}
	var puts []put
	for i := 0; i < bigCount; i++ {
		puts = append(puts, put{bigKey(i), bigContent(i), bigSize})
	}
	for i := 0; i < hotCount; i++ {
		puts = append(puts, put{hotKey(i), newHot(i, 0), hotSize})
	}
	for i := 0; i < sameCount; i++ {
		puts = append(puts, put{sameKey(i), sameContent(i), sameSize})
	}
	for d := 0; d < smallDirs; d++ {
		for f := 0; f < smallFiles; f++ {
			b := smallContent(d, f)
			puts = append(puts, put{smallKey(d, f), bytes.NewReader(b), int64(len(b))})
		}
	}
	for i := 0; i < csvCount; i++ {
		b := csvData(i)
		puts = append(puts, put{csvKey(i), bytes.NewReader(b), int64(len(b))})
	}
	jobs := make(chan put)
	errs := make(chan error, len(puts))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				if _, err := st.Put(ctx, bucket, p.key, p.body, p.size); err != nil {
					errs <- fmt.Errorf("put %s: %w", p.key, err)
				}
			}
		}()
	}
	for _, p := range puts {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

// start launches every worker.
func (r *runner) start(ctx context.Context) {
	add := func(name string, loop func(w *worker)) {
		w := &worker{name: name}
		w.last.Store(time.Now().UnixNano())
		r.workers = append(r.workers, w)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for !r.stopped() {
				loop(w)
			}
		}()
	}
	for _, m := range r.mounts {
		mp := m.dir
		for k := range 2 {
			add(fmt.Sprintf("seq-%s%d", m.name, k), func(w *worker) { r.seqRead(w, mp, k) })
		}
		add("rand-"+m.name, func(w *worker) { r.randRead(w, mp) })
		add("find-"+m.name, func(w *worker) { r.find(w, mp) })
		add("lsR-"+m.name, func(w *worker) { r.lsR(w, mp) })
		add("cat-"+m.name, func(w *worker) { r.cat(w, mp) })
		add("write-"+m.name, func(w *worker) { r.write(w, mp, m.name) })
		add("hot-"+m.name, func(w *worker) { r.hotRead(w, mp) })
		add("reput-"+m.name, func(w *worker) { r.reputRead(w, mp) })
		add("lsl-"+m.name, func(w *worker) { r.lsSame(w, mp) })
	}
	r.sameFile(add, r.mounts[0].dir)
	add("fread-"+r.mounts[1].name, func(w *worker) { r.fread(w, r.mounts[1].dir) })
	add("s3put", func(w *worker) { r.overwrite(ctx, w) })
	add("s3reput", func(w *worker) { r.reput(ctx, w) })
}

// race reports whether err is what a change made on purpose may cause: a
// file replaced (ESTALE) or renamed or deleted (ENOENT) under the reader,
// or a directory the other mount made first (EEXIST).
func race(err error) bool {
	return errors.Is(err, syscall.ESTALE) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)
}

func (r *runner) fail(w *worker, err error) {
	if race(err) {
		r.okRace.Add(1)
		return
	}
	r.ioError(w, err)
}

// seqRead reads the big objects whole, 1 MiB at a time, checking every byte.
func (r *runner) seqRead(w *worker, mp string, k int) {
	for i := 0; i < bigCount && !r.stopped(); i++ {
		idx := (i + k) % bigCount
		w.set("sequential read of " + bigKey(idx))
		f, err := os.Open(filepath.Join(mp, bigKey(idx)))
		if err != nil {
			r.fail(w, err)
			w.progress()
			continue
		}
		buf := make([]byte, 1<<20)
		var off int64
		for !r.stopped() {
			n, err := io.ReadFull(f, buf)
			if n > 0 && !bigContent(idx).matches(buf[:n], off) {
				r.wrongData("%s: %s at %d: wrong bytes", w.name, bigKey(idx), off)
			}
			off += int64(n)
			w.progress()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				if off != bigSize {
					r.wrongData("%s: %s ended at %d of %d", w.name, bigKey(idx), off, bigSize)
				}
				break
			}
			if err != nil {
				r.fail(w, err)
				break
			}
		}
		f.Close()
	}
}

// randRead reads ranges of 4 KiB to 1 MiB at random offsets.
func (r *runner) randRead(w *worker, mp string) {
	idx := rand.IntN(bigCount)
	w.set("random reads of " + bigKey(idx))
	f, err := os.Open(filepath.Join(mp, bigKey(idx)))
	if err != nil {
		r.fail(w, err)
		w.progress()
		return
	}
	defer f.Close()
	for range 50 {
		n := 4096 + rand.IntN(1<<20)
		off := rand.Int64N(bigSize - int64(n))
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			r.fail(w, err)
		} else if !bigContent(idx).matches(buf, off) {
			r.wrongData("%s: %s at %d+%d: wrong bytes", w.name, bigKey(idx), off, n)
		}
		w.progress()
		if r.stopped() {
			return
		}
	}
}

// sameFile starts three readers of one descriptor of one file, each
// reading its own third sequentially.
func (r *runner) sameFile(add func(string, func(*worker)), mp string) {
	var mu sync.Mutex
	var f *os.File
	open := func() (*os.File, error) {
		mu.Lock()
		defer mu.Unlock()
		if f == nil {
			var err error
			if f, err = os.Open(filepath.Join(mp, bigKey(0))); err != nil {
				return nil, err
			}
			r.closers = append(r.closers, f)
		}
		return f, nil
	}
	for k := range 3 {
		add(fmt.Sprintf("same%d", k), func(w *worker) {
			w.set(fmt.Sprintf("reading third %d of %s", k, bigKey(0)))
			f, err := open()
			if err != nil {
				r.fail(w, err)
				w.progress()
				return
			}
			third := int64(bigSize / 3)
			buf := make([]byte, 256<<10)
			for off := int64(k) * third; off < int64(k+1)*third && !r.stopped(); off += int64(len(buf)) {
				n, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					r.fail(w, err)
				} else if !bigContent(0).matches(buf[:n], off) {
					r.wrongData("%s: %s at %d: wrong bytes", w.name, bigKey(0), off)
				}
				w.progress()
			}
		})
	}
}

// command runs name args for w, recording its pid for the diagnostics,
// and returns its stdout and stderr.
func (r *runner) command(w *worker, stdin io.Reader, name string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	w.pids.Store(cmd.Process.Pid, name+" "+strings.Join(args, " "))
	err = cmd.Wait()
	w.pids.Delete(cmd.Process.Pid)
	return out.Bytes(), errb.Bytes(), err
}

// stderrErrors sorts a command's complaints into races and errors.
func (r *runner) stderrErrors(w *worker, stderr []byte) {
	for _, l := range strings.Split(strings.TrimSpace(string(stderr)), "\n") {
		switch {
		case l == "":
		case strings.Contains(l, "No such file or directory"), strings.Contains(l, "Stale file handle"):
			r.okRace.Add(1)
		default:
			r.ioError(w, errors.New(l))
		}
	}
}

// find walks the whole mount and checks that every small file is listed.
func (r *runner) find(w *worker, mp string) {
	w.set("find " + mp)
	out, stderr, _ := r.command(w, nil, "find", mp, "-type", "f")
	r.stderrErrors(w, stderr)
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if rel, ok := strings.CutPrefix(l, mp+"/small/"); ok && strings.HasPrefix(filepath.Base(rel), "f") {
			n++
		}
	}
	if n != smallDirs*smallFiles {
		r.wrongData("%s: find listed %d of the %d small files", w.name, n, smallDirs*smallFiles)
	}
	w.progress()
}

func (r *runner) lsR(w *worker, mp string) {
	w.set("ls -lR " + mp)
	_, stderr, _ := r.command(w, nil, "ls", "-lR", mp)
	r.stderrErrors(w, stderr)
	w.progress()
}

// cat reads ten small files with one cat and checks what it printed.
func (r *runner) cat(w *worker, mp string) {
	var args []string
	var want []byte
	for range 10 {
		d, f := rand.IntN(smallDirs), rand.IntN(smallFiles)
		args = append(args, filepath.Join(mp, smallKey(d, f)))
		want = append(want, smallContent(d, f)...)
	}
	w.set("cat of 10 small files")
	out, stderr, err := r.command(w, nil, "cat", args...)
	if err != nil {
		r.stderrErrors(w, stderr)
	} else if !bytes.Equal(out, want) {
		r.wrongData("%s: cat printed %q, want %q", w.name, out, want)
	}
	w.progress()
}

// write creates, overwrites, renames, reads back and deletes a file of its
// own in a directory the walkers walk, and a file among the small files.
func (r *runner) write(w *worker, mp, name string) {
	i := w.units.Load()
	dir := filepath.Join(mp, "w", name)
	step := func(what string, f func() error) bool {
		w.set(what)
		err := f()
		w.progress()
		if err != nil {
			r.fail(w, fmt.Errorf("%s: %w", what, err))
			return false
		}
		return true
	}
	a, b := filepath.Join(dir, fmt.Sprintf("f%d.txt", i)), filepath.Join(dir, fmt.Sprintf("g%d.txt", i))
	v1 := []byte(strings.Repeat(fmt.Sprintf("%s %d first\n", name, i), 100))
	v2 := []byte(fmt.Sprintf("%s %d second\n", name, i))
	ok := step("mkdir "+dir, func() error { return os.MkdirAll(dir, 0o755) }) &&
		step("create "+a, func() error { return os.WriteFile(a, v1, 0o644) }) &&
		step("overwrite "+a, func() error { return os.WriteFile(a, v2, 0o644) }) &&
		step("rename "+a, func() error { return os.Rename(a, b) }) &&
		step("read back "+b, func() error {
			got, err := os.ReadFile(b)
			if err == nil && !bytes.Equal(got, v2) {
				r.wrongData("%s: %s holds %q, want %q", w.name, b, got, v2)
			}
			return err
		}) &&
		step("delete "+b, func() error { return os.Remove(b) })
	_ = ok
	tmp := filepath.Join(mp, fmt.Sprintf("small/d%02d/tmp-%s-%d.txt", int(i)%smallDirs, name, i))
	_ = step("create "+tmp, func() error { return os.WriteFile(tmp, v2, 0o644) }) &&
		step("delete "+tmp, func() error { return os.Remove(tmp) })
}

// hotRead reads a hot object whole: it must be one version, never a mix.
func (r *runner) hotRead(w *worker, mp string) {
	i := rand.IntN(hotCount)
	w.set("read of " + hotKey(i))
	got, err := os.ReadFile(filepath.Join(mp, hotKey(i)))
	w.progress()
	if err != nil {
		r.fail(w, err)
		return
	}
	if len(got) < 8 {
		r.wrongData("%s: %s is %d bytes", w.name, hotKey(i), len(got))
		return
	}
	v := binary.LittleEndian.Uint64(got)
	want := make([]byte, hotSize)
	newHot(i, v).ReadAt(want, 0)
	if !bytes.Equal(got, want) {
		r.wrongData("%s: %s (version %d, %d bytes) is not that version whole", w.name, hotKey(i), v, len(got))
	}
}

// overwrite puts a new version of a hot object through the S3 API, twice
// a second.
func (r *runner) overwrite(ctx context.Context, w *worker) {
	i := int(w.units.Load() % hotCount)
	v := uint64(w.units.Load()/hotCount + 1)
	w.set(fmt.Sprintf("S3 put of %s version %d", hotKey(i), v))
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := r.st.Put(pctx, bucket, hotKey(i), newHot(i, v), hotSize); err != nil {
		r.ioError(w, err)
	}
	w.progress()
	time.Sleep(500 * time.Millisecond)
}

// fread reads every CSV file with data.table::fread in one R session,
// printing a line per file, until stdin closes.
func (r *runner) fread(w *worker, mp string) {
	if _, err := exec.LookPath("Rscript"); err != nil {
		w.set("no Rscript: cat of the CSV files instead")
		_, stderr, err := r.command(w, nil, "cat", filepath.Join(mp, csvKey(rand.IntN(csvCount))))
		if err != nil {
			r.stderrErrors(w, stderr)
		}
		w.progress()
		return
	}
	w.set("R fread of " + mp + "/csv")
	script := fmt.Sprintf(`suppressMessages(library(data.table))
for (i in 1:20) for (f in list.files(%q, full.names = TRUE)) {
  d <- fread(f)
  if (nrow(d) != %d) stop("rows ", nrow(d), " in ", f)
  cat("ok\n"); flush(stdout())
}`, filepath.Join(mp, "csv"), csvRows)
	cmd := exec.Command("Rscript", "-e", script)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.ioError(w, err)
		return
	}
	if err := cmd.Start(); err != nil {
		r.ioError(w, err)
		return
	}
	w.pids.Store(cmd.Process.Pid, "Rscript fread loop")
	buf := make([]byte, 3)
	for {
		if _, err := io.ReadFull(out, buf); err != nil {
			break
		}
		w.progress()
		if r.stopped() {
			cmd.Process.Kill()
			break
		}
	}
	if err := cmd.Wait(); err != nil && !r.stopped() {
		r.stderrErrors(w, errb.Bytes())
		if errb.Len() == 0 {
			r.ioError(w, fmt.Errorf("Rscript: %v", err))
		}
	}
	w.pids.Delete(cmd.Process.Pid)
}

// reput deletes an object of same/ and puts the same bytes again through
// the S3 API: the ETag stays, the time changes, and readers in between
// find it gone.
func (r *runner) reput(ctx context.Context, w *worker) {
	i := int(w.units.Load() % sameCount)
	w.set("S3 delete and put again of " + sameKey(i))
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := r.st.Delete(pctx, bucket, sameKey(i)); err != nil {
		r.ioError(w, err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := r.st.Put(pctx, bucket, sameKey(i), sameContent(i), sameSize); err != nil {
		r.ioError(w, err)
	}
	w.progress()
	time.Sleep(400 * time.Millisecond)
}

// reputRead reads an object of same/ whole.
func (r *runner) reputRead(w *worker, mp string) {
	i := rand.IntN(sameCount)
	w.set("read of " + sameKey(i))
	got, err := os.ReadFile(filepath.Join(mp, sameKey(i)))
	w.progress()
	if err != nil {
		r.fail(w, err)
		return
	}
	if int64(len(got)) != sameSize || !sameContent(i).matches(got, 0) {
		r.wrongData("%s: %s: wrong bytes (%d)", w.name, sameKey(i), len(got))
	}
}

// lsSame lists same/ with attributes, over and over.
func (r *runner) lsSame(w *worker, mp string) {
	w.set("ls -l " + mp + "/same")
	_, stderr, _ := r.command(w, nil, "ls", "-l", filepath.Join(mp, "same"))
	r.stderrErrors(w, stderr)
	w.progress()
	time.Sleep(100 * time.Millisecond)
}
