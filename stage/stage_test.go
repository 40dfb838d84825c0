package stage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

func TestPartLayout(t *testing.T) {
	const ps = 8 << 20
	tests := []struct {
		num        int
		start, end int64
	}{
		{1, 0, ps},
		{2, ps, 2 * ps},
		{1000, 999 * ps, 1000 * ps},
		{1001, 1000 * ps, 1000*ps + 2*ps},
		{2000, 1000*ps + 999*2*ps, 3000 * ps},
		{2001, 3000 * ps, 3000*ps + 4*ps},
	}
	for _, tc := range tests {
		start, end := partBounds(ps, tc.num)
		if start != tc.start || end != tc.end {
			t.Errorf("partBounds(%d) = [%d, %d), want [%d, %d)", tc.num, start, end, tc.start, tc.end)
		}
		for _, off := range []int64{start, end - 1} {
			if got := partAt(ps, off); got != tc.num {
				t.Errorf("partAt(%d) = %d, want %d", off, got, tc.num)
			}
		}
	}
	if n := numParts(ps, 5<<40); n > store.MaxParts {
		t.Errorf("5 TiB takes %d parts", n)
	}
	for _, tc := range []struct {
		size int64
		want int
	}{{0, 1}, {1, 1}, {ps, 1}, {ps + 1, 2}, {1000 * ps, 1000}, {1000*ps + 1, 1001}} {
		if got := numParts(ps, tc.size); got != tc.want {
			t.Errorf("numParts(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

// fixture is an area over a counting memory store with a bucket "b".
type fixture struct {
	area *Area
	mem  *memstore.Store
	fs   *faultstore.Store
}

func newFixture(t *testing.T, cfg Config) fixture {
	t.Helper()
	mem := memstore.New()
	if err := mem.CreateBucket(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	fst := faultstore.New(mem)
	cfg.Dir = t.TempDir() + "/staging"
	cfg.Writer = fst
	a, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{area: a, mem: mem, fs: fst}
}

func (fx fixture) object(t *testing.T, key string) []byte {
	t.Helper()
	o, err := fx.mem.Stat(t.Context(), "b", key)
	if err != nil {
		t.Fatalf("Stat(%s): %v", key, err)
	}
	p := make([]byte, o.Size)
	n, err := fx.mem.ReadAt(t.Context(), "b", key, "", p, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return p[:n]
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestLimit(t *testing.T) {
	fx := newFixture(t, Config{Limit: 1000})
	f1, err := fx.area.Create("a/one.csv")
	if err != nil {
		t.Fatal(err)
	}
	f2, err := fx.area.Create("two")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		err  error
		used int64
	}{
		{"600 bytes", func() error { _, err := f1.WriteAt(make([]byte, 600), 0); return err }, nil, 600},
		{"overwrite costs nothing", func() error { _, err := f1.WriteAt(make([]byte, 600), 0); return err }, nil, 600},
		{"500 more in another file", func() error { _, err := f2.WriteAt(make([]byte, 500), 0); return err }, ErrFull, 600},
		{"400 fit", func() error { _, err := f2.WriteAt(make([]byte, 400), 0); return err }, nil, 1000},
		{"a hole counts", func() error { _, err := f1.WriteAt([]byte{1}, 700); return err }, ErrFull, 1000},
		{"truncate frees", func() error { return f1.Truncate(100) }, nil, 500},
		{"truncate up reserves", func() error { return f1.Truncate(700) }, ErrFull, 500},
		{"remove frees", f2.Remove, nil, 100},
	}
	for _, st := range steps {
		err := st.do()
		if !errors.Is(err, st.err) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.err)
		}
		if st.err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: %v does not wrap ENOSPC", st.name, err)
		}
		if got, _ := used(fx.area); got != st.used {
			t.Errorf("%s: used %d, want %d", st.name, got, st.used)
		}
	}
	if _, files := used(fx.area); files != 1 {
		t.Errorf("%d files, want 1", files)
	}
	if err := f1.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f1.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging file still there after Remove: %v", err)
	}
	if err := fx.area.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(fx.area.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty staging directory kept: %v", err)
	}
}

func TestReadWriteTruncate(t *testing.T) {
	fx := newFixture(t, Config{})
	f, err := fx.area.Create("x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	if n, err := f.WriteAt([]byte("hello world"), 0); err != nil || n != 11 {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if _, err := f.WriteAt([]byte("WORLD!"), 6); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(11); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 20)
	n, err := f.ReadAt(p, 0)
	if err != io.EOF || string(p[:n]) != "hello WORLD" {
		t.Errorf("ReadAt = %q, %v", p[:n], err)
	}
	if err := f.Truncate(14); err != nil {
		t.Fatal(err)
	}
	n, _ = f.ReadAt(p, 9)
	if string(p[:n]) != "LD\x00\x00\x00" {
		t.Errorf("after truncate up: %q", p[:n])
	}
}

func TestUploadSmall(t *testing.T) {
	fx := newFixture(t, Config{})
	ctx := t.Context()
	f, err := fx.area.Create("new.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	f.WriteAt([]byte("a,b\n1,2\n"), 0)
	o, err := f.Upload(ctx, "b", "new.csv", store.PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if o.Size != 8 || string(fx.object(t, "new.csv")) != "a,b\n1,2\n" {
		t.Errorf("Upload = %+v, object %q", o, fx.object(t, "new.csv"))
	}
	// Someone else's object: a conditional create refuses, the staged
	// bytes stay for another try.
	fx.mem.Put(ctx, "b", "taken", bytes.NewReader([]byte("theirs")), 6)
	if _, err := f.Upload(ctx, "b", "taken", store.PutOptions{IfAbsent: true}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Upload over another writer's object = %v, want ErrExists", err)
	}
	if string(fx.object(t, "taken")) != "theirs" {
		t.Errorf("conditional upload clobbered the object")
	}
	if _, err := f.Upload(ctx, "b", "taken", store.PutOptions{}); err != nil || string(fx.object(t, "taken")) != "a,b\n1,2\n" {
		t.Errorf("unconditional retry: %v, %q", err, fx.object(t, "taken"))
	}
}

// TestUploadStreaming writes sequentially: complete parts go out while the
// file is written; a part changed after it was sent goes out again.
func TestUploadStreaming(t *testing.T) {
	const ps = store.MinPartSize
	fx := newFixture(t, Config{PartSize: ps, Threshold: ps + 1, Concurrency: 3})
	f, err := fx.area.Create("big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	f.SetTarget("b", "big.bin")
	data := randomBytes(1, 4*ps+12345)
	for off := 0; off < len(data); off += 128 << 10 {
		end := min(off+128<<10, len(data))
		if _, err := f.WriteAt(data[off:end], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return fx.fs.Count(faultstore.OpPutPart) >= 4 }, "4 parts sent in the background")
	if _, err := fx.mem.Stat(t.Context(), "b", "big.bin"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("object visible before Upload: %v", err)
	}
	// Change part 2 after it was sent.
	copy(data[ps+10:], "changed")
	f.WriteAt([]byte("changed"), ps+10)
	o, err := f.Upload(t.Context(), "b", "big.bin", store.PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if o.Size != int64(len(data)) || !bytes.Equal(fx.object(t, "big.bin"), data) {
		t.Fatalf("uploaded object differs (size %d)", o.Size)
	}
	// 4 in the background, then part 2 again and the last part.
	if got := fx.fs.Count(faultstore.OpPutPart); got != 6 {
		t.Errorf("%d parts sent, want 6", got)
	}
	if got := fx.fs.Count(faultstore.OpStartUpload); got != 1 {
		t.Errorf("%d uploads started, want 1", got)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUploadFailure: a refused upload is aborted, reported, leaves no
// object and keeps the staged bytes for the retry.
func TestUploadFailure(t *testing.T) {
	const ps = store.MinPartSize
	refused := errors.New("injected: server refuses")
	tests := []struct {
		name string
		size int
		op   string
	}{
		{"small put", 1000, faultstore.OpPut},
		{"part", 3 * ps, faultstore.OpPutPart},
		{"completion", 3 * ps, faultstore.OpComplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, Config{PartSize: ps, Threshold: ps})
			fx.fs.SetHook(func(ctx context.Context, op, bucket, key string) error {
				if op == tc.op {
					return refused
				}
				return nil
			})
			f, err := fx.area.Create("f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Remove()
			data := randomBytes(2, tc.size)
			f.WriteAt(data, 0)
			if _, err := f.Upload(t.Context(), "b", "f", store.PutOptions{IfAbsent: true}); !errors.Is(err, refused) {
				t.Fatalf("Upload = %v, want the injected error", err)
			}
			if _, err := fx.mem.Stat(t.Context(), "b", "f"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("failed upload left an object: %v", err)
			}
			if tc.size > ps && fx.fs.Count(faultstore.OpAbort) != 1 {
				t.Errorf("%d aborts, want 1", fx.fs.Count(faultstore.OpAbort))
			}
			staged, err := os.ReadFile(f.Path())
			if err != nil || !bytes.Equal(staged, data) {
				t.Fatalf("staged bytes lost: %v", err)
			}
			fx.fs.SetHook(nil)
			if _, err := f.Upload(t.Context(), "b", "f", store.PutOptions{IfAbsent: true}); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if !bytes.Equal(fx.object(t, "f"), data) {
				t.Errorf("retried upload differs")
			}
		})
	}
}

// TestUploadShrunk: a file streamed in parts then cut below the threshold
// goes up in one PUT, and the parts already sent are discarded.
func TestUploadShrunk(t *testing.T) {
	const ps = store.MinPartSize
	fx := newFixture(t, Config{PartSize: ps, Threshold: ps})
	f, err := fx.area.Create("s")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	f.SetTarget("b", "s")
	data := randomBytes(3, 3*ps)
	f.WriteAt(data, 0)
	waitFor(t, func() bool { return fx.fs.Count(faultstore.OpPutPart) >= 2 }, "parts sent")
	if err := f.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Upload(t.Context(), "b", "s", store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fx.object(t, "s"), data[:100]) {
		t.Errorf("object is not the first 100 bytes")
	}
	if fx.fs.Count(faultstore.OpAbort) != 1 {
		t.Errorf("%d aborts, want 1", fx.fs.Count(faultstore.OpAbort))
	}
}

// used returns the bytes staged now and the number of staging files.
func used(a *Area) (bytes int64, files int) {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	return a.b.used, a.b.files
}

// TestFullLogged: while writes keep failing on a full area, or on a user's
// full share, the log says so once per fullLogEvery of the clock, not once
// per refused write.
func TestFullLogged(t *testing.T) {
	tests := []struct {
		name string
		user bool  // alice's share is what is full, else the area
		at   []int // seconds of the clock at each refused write
		want []int // the log's count of the full line after each
	}{
		{name: "area", at: []int{0, 1, 9, 10, 11, 30}, want: []int{1, 1, 1, 2, 2, 3}},
		{name: "user's share", user: true, at: []int{0, 5, 10, 19, 20}, want: []int{1, 1, 2, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
			now := t0
			fx := newFixture(t, Config{Limit: 1000, UserLimit: 500, Logger: slog.New(slog.NewTextHandler(&log, nil)),
				Now: func() time.Time { return now }})
			defer fx.area.Close()
			area, line := fx.area, "staging area full:"
			if tt.user {
				aa, err := fx.area.For(Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Name: "alice"})
				if err != nil {
					t.Fatal(err)
				}
				area, line = aa, "share of the staging area is full"
			}
			f, err := area.Create("big.csv")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Remove()
			for i, s := range tt.at {
				now = t0.Add(time.Duration(s) * time.Second)
				if _, err := f.WriteAt(make([]byte, 2000), 0); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("write at %ds: %v, want ENOSPC", s, err)
				}
				if got := strings.Count(log.String(), line); got != tt.want[i] {
					t.Errorf("after the refusal at %ds: %d lines %q, want %d", s, got, line, tt.want[i])
				}
			}
		})
	}
}
