package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLargeObjectSHA256 reads a 1 GiB object through the mount twice (the
// second read runs partly from the cache, which is smaller than the object
// by default) and compares both with the seeding tool's SHA-256.
// BUCKETFS_E2E_BIG_SIZE overrides the size for quicker local runs.
func TestLargeObjectSHA256(t *testing.T) {
	s := need(t)
	size := os.Getenv("BUCKETFS_E2E_BIG_SIZE")
	if size == "" {
		size = "1GiB"
	}
	bkt := s.bucket("big")
	sums := s.seedRandom(t, fmt.Sprintf("%s/blob/big.bin:%s", bkt, size))
	want, ok := sums["blob/big.bin"]
	if !ok {
		t.Fatalf("s3seed printed no SHA-256 for blob/big.bin (got %v)", sums)
	}
	mp := s.mount(t, "s3://"+bkt)
	p := filepath.Join(mp, "blob", "big.bin")
	for i := 1; i <= 2; i++ {
		r := s.exec(t, 15*time.Minute, nil, "sha256sum", p)
		if r.err != nil {
			t.Fatalf("read %d: sha256sum: %v: %s", i, r.err, clip(r.stderr))
		}
		got, _, _ := strings.Cut(r.stdout, " ")
		if got != want {
			t.Errorf("read %d: sha256 = %s, want %s", i, got, want)
		}
		t.Logf("read %d of %s took %v", i, size, r.took.Round(time.Millisecond))
	}
}

// treeLayout is the many-small-objects tree: 20 directories holding 10,000
// objects, one of them large enough that its listing takes several pages.
func treeLayout() map[string]int {
	dirs := map[string]int{"d00": 3350}
	for i := 1; i < 20; i++ {
		dirs[fmt.Sprintf("d%02d", i)] = 350
	}
	return dirs
}

// listPages is how many ListObjectsV2 pages of 1,000 a directory of n
// entries needs (an empty one still needs one).
func listPages(n int) int {
	if n == 0 {
		return 1
	}
	return (n + 999) / 1000
}

// TestManySmallObjects walks a 10,000-object tree with find and ls -lR and
// counts, from the server's access log, the requests the walk caused: the
// listing must carry the attributes (no HEAD per file) and each directory
// must be listed about once.
func TestManySmallObjects(t *testing.T) {
	s := need(t)
	bkt := s.bucket("tree")
	layout := treeLayout()
	root := t.TempDir()
	total := 0
	for d, n := range layout {
		dir := filepath.Join(root, bkt, d)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			name := filepath.Join(dir, fmt.Sprintf("f%05d.txt", i))
			if err := os.WriteFile(name, []byte(fmt.Sprintf("%s/%d\n", d, i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		total += n
	}
	if total != 10000 {
		t.Fatalf("layout has %d objects, want 10000", total)
	}
	s.seedDir(t, root)

	expected := listPages(len(layout)) // the bucket root: 20 common prefixes
	for _, n := range layout {
		expected += listPages(n)
	}
	limit := 2*expected + 5
	const headLimit = 5

	mp := s.mount(t, "s3://"+bkt)

	mark := s.log.mark(t)
	r := s.exec(t, 10*time.Minute, nil, "find", mp, "-type", "f")
	if r.err != nil {
		t.Fatalf("find: %v: %s", r.err, clip(r.stderr))
	}
	if n := len(lines(r.stdout)); n != total {
		t.Errorf("find listed %d files, want %d", n, total)
	}
	c := s.log.count(t, mark, bkt)
	t.Logf("find of %d files took %v; requests: %v (expected ~%d lists)", total, r.took.Round(time.Millisecond), c, expected)
	if c["HeadObject"] > headLimit {
		t.Errorf("find sent %d HeadObject requests, want at most %d", c["HeadObject"], headLimit)
	}
	if n := lists(c); n > limit {
		t.Errorf("find sent %d list requests, want at most %d (2*%d+5)", n, limit, expected)
	}
	if c["GetObject"] != 0 {
		t.Errorf("find sent %d GetObject requests, want 0", c["GetObject"])
	}

	mark = s.log.mark(t)
	r = s.exec(t, 10*time.Minute, nil, "ls", "-lR", mp)
	if r.err != nil {
		t.Fatalf("ls -lR: %v: %s", r.err, clip(r.stderr))
	}
	// One line per file, plus headers, totals and blank lines per directory.
	if n := strings.Count(r.stdout, "\n-r"); n != total {
		t.Errorf("ls -lR showed %d regular files, want %d", n, total)
	}
	c = s.log.count(t, mark, bkt)
	t.Logf("ls -lR took %v; requests: %v", r.took.Round(time.Millisecond), c)
	if c["HeadObject"] != 0 {
		t.Errorf("ls -lR right after find sent %d HeadObject requests, want 0", c["HeadObject"])
	}
	if n := lists(c); n > limit {
		t.Errorf("ls -lR sent %d list requests, want at most %d", n, limit)
	}
	if c["GetObject"] != 0 {
		t.Errorf("ls -lR sent %d GetObject requests, want 0", c["GetObject"])
	}
}
