package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listingFiles is the content of the bucket the listing tests mount.
var listingFiles = map[string][]byte{
	"hello.txt":      []byte("hello, bucketfs\n"),
	"p/one.csv":      []byte("a,b\n1,2\n"),
	"p/q/two.txt":    []byte("two\n"),
	"p/q/three.txt":  []byte("three\n"),
	"top/bytes.bin":  bytes.Repeat([]byte{0, 1, 2, 3, 255}, 1000),
	"emptydir/":      nil,
	"spaced name.md": []byte("# a file name with a space\n"),
}

func TestMountListing(t *testing.T) {
	s := need(t)
	a, b := s.bucket("list-a"), s.bucket("list-b")
	s.seedBuckets(t, map[string]map[string][]byte{
		a: listingFiles,
		b: {"readme.md": []byte("bucket b\n")},
	})
	bucketRoot := []string{"emptydir", "hello.txt", "p", "spaced name.md", "top"}
	tests := []struct {
		name       string
		source     string
		sub        string   // directory below the mount point to list
		wantSubset []string // ls -1 must include these
		wantExact  []string // ls -1 must be exactly these
		wantFiles  []string // find -type f below sub, relative, sorted
	}{
		{name: "all buckets root", source: "", sub: ".", wantSubset: []string{a, b}},
		{name: "all buckets, one bucket dir", source: "", sub: a, wantExact: bucketRoot},
		{name: "all buckets, second bucket", source: "", sub: b, wantExact: []string{"readme.md"},
			wantFiles: []string{"readme.md"}},
		{name: "single bucket", source: "s3://" + a, sub: ".", wantExact: bucketRoot,
			wantFiles: []string{"hello.txt", "p/one.csv", "p/q/three.txt", "p/q/two.txt", "spaced name.md", "top/bytes.bin"}},
		{name: "single bucket subdir", source: "s3://" + a, sub: "p/q", wantExact: []string{"three.txt", "two.txt"}},
		{name: "empty dir marker", source: "s3://" + a, sub: "emptydir", wantExact: nil},
		{name: "prefix", source: "s3://" + a + "/p/", sub: ".", wantExact: []string{"one.csv", "q"},
			wantFiles: []string{"one.csv", "q/three.txt", "q/two.txt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mp := s.mount(t, tc.source)
			dir := filepath.Join(mp, tc.sub)
			got := lines(s.must(t, time.Minute, "ls", "-1", dir))
			for _, w := range tc.wantSubset {
				if !slices.Contains(got, w) {
					t.Errorf("ls %s = %q, missing %q", tc.sub, got, w)
				}
			}
			if tc.wantSubset == nil && !slices.Equal(got, tc.wantExact) {
				t.Errorf("ls %s = %q, want %q", tc.sub, got, tc.wantExact)
			}
			if tc.wantFiles != nil {
				out := s.must(t, time.Minute, "find", dir, "-type", "f", "-printf", "%P\n")
				files := lines(out)
				slices.Sort(files)
				if !slices.Equal(files, tc.wantFiles) {
					t.Errorf("find %s -type f = %q, want %q", tc.sub, files, tc.wantFiles)
				}
			}
		})
	}
}

func TestStatAndContent(t *testing.T) {
	s := need(t)
	bkt := s.bucket("stat")
	files := map[string][]byte{
		"empty.txt":             {},
		"small.txt":             []byte("small file\n"),
		"dir/mid.bin":           pseudoRandom(1, 300<<10),
		"dir/sub/large.bin":     pseudoRandom(2, 17<<20+123), // above common multipart thresholds
		"dir/sub/deeper/x.csv":  []byte("x,y\n1,2\n3,4\n"),
		"odd name (1) & co.txt": []byte("odd\n"),
	}
	s.seedBuckets(t, map[string]map[string][]byte{bkt: files})
	// Mount a little later, so an mtime of "now" cannot pass for the
	// objects' Last-Modified.
	time.Sleep(2100 * time.Millisecond)

	mp := s.mount(t, "s3://"+bkt)
	ctx := context.Background()
	for key, data := range files {
		t.Run(key, func(t *testing.T) {
			p := filepath.Join(mp, filepath.FromSlash(key))
			f := strings.Fields(s.must(t, time.Minute, "stat", "-c", "%s %Y %a", p))
			if len(f) != 3 {
				t.Fatalf("stat %s: unexpected output %q", key, f)
			}
			size, _ := strconv.ParseInt(f[0], 10, 64)
			mtime, _ := strconv.ParseInt(f[1], 10, 64)
			if size != int64(len(data)) {
				t.Errorf("stat size = %d, want %d", size, len(data))
			}
			if f[2] != "644" {
				t.Errorf("stat mode = %s, want 644 (the default --file-mode of a read-write mount)", f[2])
			}
			lm, _, err := s.s3.lastModified(ctx, bkt, key)
			if err != nil {
				t.Fatalf("HEAD %s: %v", key, err)
			}
			// Last-Modified has whole seconds; allow one for rounding.
			if d := mtime - lm.Unix(); d < -1 || d > 1 {
				t.Errorf("stat mtime = %s, server Last-Modified = %s",
					time.Unix(mtime, 0).UTC(), lm.UTC())
			}
			got := s.must(t, time.Minute, "sha256sum", p)
			want := sha256.Sum256(data)
			if gotSum, _, _ := strings.Cut(got, " "); gotSum != hex.EncodeToString(want[:]) {
				t.Errorf("sha256sum = %s, want %x", gotSum, want)
			}
			if len(data) < 1<<20 {
				if out := s.must(t, time.Minute, "cat", p); out != string(data) {
					t.Errorf("cat returned %d bytes that differ from the %d uploaded", len(out), len(data))
				}
			}
		})
	}
	t.Run("directories", func(t *testing.T) {
		for _, d := range []string{".", "dir", "dir/sub", "dir/sub/deeper"} {
			out := strings.TrimSpace(s.must(t, time.Minute, "stat", "-c", "%F %a", filepath.Join(mp, d)))
			if out != "directory 755" {
				t.Errorf("stat %s = %q, want \"directory 755\" (the default --dir-mode of a read-write mount)", d, out)
			}
		}
	})
	t.Run("unmount", func(t *testing.T) {
		s.unmount(t, mp)
	})
}

// TestOwnershipAndModeFlags checks --uid, --gid, --file-mode and --dir-mode.
func TestOwnershipAndModeFlags(t *testing.T) {
	s := need(t)
	bkt := s.bucket("modes")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"d/f.txt": []byte("f\n")}})
	mp := s.mount(t, "s3://"+bkt, "--uid", "4242", "--gid", "4343", "--file-mode", "0440", "--dir-mode", "0550")
	tests := []struct{ path, want string }{
		{"d/f.txt", "4242 4343 440 regular file"},
		{"d", "4242 4343 550 directory"},
	}
	for _, tc := range tests {
		got := strings.TrimSpace(s.must(t, time.Minute, "stat", "-c", "%u %g %a %F", filepath.Join(mp, tc.path)))
		if got != tc.want {
			t.Errorf("stat %s = %q, want %q", tc.path, got, tc.want)
		}
	}
}
