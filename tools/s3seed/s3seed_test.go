package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/memstore"
)

func TestParseRandomSpec(t *testing.T) {
	tests := []struct {
		in   string
		want randomSpec
		ok   bool
	}{
		{"big/data.bin:1GiB", randomSpec{"big", "data.bin", 1 << 30}, true},
		{"b/dir/sub/x:10KiB", randomSpec{"b", "dir/sub/x", 10 << 10}, true},
		{"b/a:b:5", randomSpec{"b", "a:b", 5}, true},
		{"b:5", randomSpec{}, false},
		{"/k:5", randomSpec{}, false},
		{"b/:5", randomSpec{}, false},
		{"b/k", randomSpec{}, false},
		{"b/k:lots", randomSpec{}, false},
	}
	for _, tc := range tests {
		got, err := parseRandomSpec(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRandomSpec(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRandomReader(t *testing.T) {
	const size = 100003
	r := newRandomReader("k", size)
	all := make([]byte, size+10)
	n, err := r.ReadAt(all, 0)
	if n != size || err != io.EOF {
		t.Fatalf("ReadAt(whole+10) = %d, %v; want %d, EOF", n, err, size)
	}
	all = all[:size]
	if bytes.Count(all, []byte{0}) > size/100 {
		t.Error("output looks all zero, not random")
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 200; i++ {
		off := rng.Int64N(size)
		p := make([]byte, rng.IntN(5000))
		n, err := r.ReadAt(p, off)
		want := all[off:min(off+int64(len(p)), size)]
		if n != len(want) || !bytes.Equal(p[:n], want) {
			t.Fatalf("ReadAt(off=%d,len=%d) differs from the sequential bytes", off, len(p))
		}
		if n < len(p) && err != io.EOF {
			t.Fatalf("short read without EOF: %v", err)
		}
	}
	again := make([]byte, 64)
	newRandomReader("k", size).ReadAt(again, 0)
	other := make([]byte, 64)
	newRandomReader("k2", size).ReadAt(other, 0)
	if !bytes.Equal(again, all[:64]) {
		t.Error("same key gave different bytes")
	}
	if bytes.Equal(other, all[:64]) {
		t.Error("different keys gave the same bytes")
	}
	if n, err := r.ReadAt(make([]byte, 4), size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at end = %d, %v", n, err)
	}
}

// writeTree creates files (content = path) and empty directories (paths
// ending in "/") under a temp dir.
func writeTree(t *testing.T, paths []string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func listAll(t *testing.T, s store.ObjectStore, bucket string) map[string]string {
	t.Helper()
	out := map[string]string{}
	page, err := s.List(t.Context(), store.ListInput{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range page.Objects {
		p := make([]byte, o.Size)
		if _, err := store.ReadAt(t.Context(), s, bucket, o.Key, "", p, 0); err != nil && o.Size > 0 {
			t.Fatal(err)
		}
		out[o.Key] = string(p)
	}
	return out
}

func TestSeedDir(t *testing.T) {
	dir := writeTree(t, []string{
		"data/flights.csv", "data/sales/year=2024/part-0.csv", "data/empty/", "data/deep/er/",
		"logs/app/x.log", "nothing/", "top-level-file.txt",
	})
	if err := os.Symlink("flights.csv", filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	m := memstore.New()
	var warn bytes.Buffer
	n, err := seedDir(t.Context(), m, dir, &warn)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("seedDir uploaded %d objects, want 5", n)
	}
	bs, _ := m.ListBuckets(t.Context())
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	if want := []string{"data", "logs", "nothing"}; !reflect.DeepEqual(names, want) {
		t.Errorf("buckets %q, want %q", names, want)
	}
	wantObjects := map[string]map[string]string{
		"data": {
			"flights.csv":                "data/flights.csv",
			"sales/year=2024/part-0.csv": "data/sales/year=2024/part-0.csv",
			"empty/":                     "",
			"deep/er/":                   "",
		},
		"logs":    {"app/x.log": "logs/app/x.log"},
		"nothing": {},
	}
	for b, want := range wantObjects {
		if got := listAll(t, m, b); !reflect.DeepEqual(got, want) {
			t.Errorf("bucket %s: %q, want %q", b, got, want)
		}
	}
	for _, w := range []string{"top-level-file.txt", "link"} {
		if !strings.Contains(warn.String(), w) {
			t.Errorf("no warning about %s in %q", w, warn.String())
		}
	}
}

func TestSeedDirFailure(t *testing.T) {
	var paths []string
	for i := 0; i < 100; i++ {
		paths = append(paths, fmt.Sprintf("ok/f%d", i))
	}
	dir := writeTree(t, append(paths, "denied/f"))
	m := memstore.New()
	m.SetAccessDenied("denied", true)
	_, err := seedDir(t.Context(), m, dir, io.Discard)
	if !errors.Is(err, store.ErrAccessDenied) {
		t.Errorf("seedDir into a denied bucket = %v, want ErrAccessDenied", err)
	}
	if _, err := seedDir(t.Context(), m, filepath.Join(dir, "missing"), io.Discard); err == nil {
		t.Error("seedDir of a missing directory succeeded")
	}
}

func TestSeedRandom(t *testing.T) {
	m := memstore.New()
	spec := randomSpec{bucket: "rnd", key: "a/b.bin", size: 3<<20 + 5}
	sum, err := seedRandom(t.Context(), m, spec)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, spec.size)
	if n, err := m.ReadAt(t.Context(), "rnd", "a/b.bin", "", p, 0); int64(n) != spec.size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	h := sha256.Sum256(p)
	if got := hex.EncodeToString(h[:]); got != sum {
		t.Errorf("printed sha256 %s, stored bytes hash to %s", sum, got)
	}
	sum2, err := seedRandom(t.Context(), m, spec)
	if err != nil || sum2 != sum {
		t.Errorf("second run gave %s, %v; want the same %s", sum2, err, sum)
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no args", nil},
		{"two dirs", []string{"a", "b"}},
		{"bad random", []string{"--random", "nocolon", "dir"}},
		{"unknown flag", []string{"--bogus", "dir"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := run(tc.args, io.Discard, io.Discard); err == nil {
				t.Errorf("run(%q) succeeded", tc.args)
			}
		})
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	if err := run([]string{"dir"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("run without credentials = %v, want an error naming AWS_ACCESS_KEY_ID", err)
	}
}
