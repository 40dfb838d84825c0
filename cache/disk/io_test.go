package disk

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestRoundTrip: blocks of every length against the page, written and
// read with O_DIRECT or through the page cache in any combination, from
// buffers aligned or not and into buffers that fit or do not, come back
// exactly; the padding on disk is zeros and the caller's bytes are not
// changed.
func TestRoundTrip(t *testing.T) {
	const bsize = 4 * page
	sizes := []int{1, 100, page - 1, page, page + 1, 3*page + 7, bsize}
	modes := []struct {
		name              string
		writeDir, readDir bool
	}{
		{"direct", true, true},
		{"buffered", false, false},
		{"direct then buffered", true, false},
		{"buffered then direct", false, true},
	}
	dsts := []struct {
		name string
		dst  func(n int) []byte
	}{
		{"nil", func(int) []byte { return nil }},
		{"aligned block buffer", func(int) []byte { return aligned(bsize)[:0] }},
		{"unaligned", func(int) []byte { return make([]byte, bsize+1)[1:] }},
		{"too small", func(n int) []byte { return aligned(page)[:0] }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, Config{Dir: dir})
			for i, n := range sizes {
				k := Key{Bucket: "b", Object: "rt", ETag: `"e"`, BlockSize: bsize, Index: int64(i)}
				want := block(byte(i), n)
				// The block's buffer: aligned, with spare capacity full of
				// other bytes, or unaligned.
				src := aligned(bsize)
				for j := range src {
					src[j] = 0xee
				}
				if i%2 == 1 {
					src = make([]byte, bsize+5)[5:]
				}
				src = src[:n]
				copy(src, want)
				c.direct.Store(m.writeDir)
				c.PutNow(k, src)
				if !bytes.Equal(src, want) {
					t.Fatalf("%d bytes: the caller's bytes changed", n)
				}
				p := k.file(1).path(dir)
				raw, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("%d bytes: %v", n, err)
				}
				if int64(len(raw)) != fileSize(int64(n)) || !bytes.Equal(raw[page:page+n], want) ||
					bytes.ContainsFunc(raw[page+n:], func(r rune) bool { return r != 0 }) {
					t.Fatalf("%d bytes: file of %d bytes, not the block padded with zeros", n, len(raw))
				}
				for _, d := range dsts {
					c.direct.Store(m.readDir)
					got, ok := c.GetInto(context.Background(), k, d.dst(n))
					if !ok || !bytes.Equal(got, want) {
						t.Fatalf("%d bytes into %s: got %d bytes, ok=%v", n, d.name, len(got), ok)
					}
				}
			}
			if s := c.Stats(); s.Errors != 0 || s.Off != "" || c.direct.Load() != m.readDir {
				t.Fatalf("stats %+v, direct %v", s, c.direct.Load())
			}
		})
	}
}

// TestEarlierFormats: the files of format 1 and 2 (one block per file,
// named by 32 hex digits) are removed at start; a file under a name of
// today whose header is of an earlier format is not served, and dropped.
func TestEarlierFormats(t *testing.T) {
	dir := t.TempDir()
	oldPath := filepath.Join(dir, "01", "0123456789abcdef0123456789abcdef")
	k := key("k", 0)
	p := k.file(1).path(dir)
	for _, f := range []struct {
		path, magic string
	}{{oldPath, magicV1}, {oldPath + ".tmp3", magicV2}, {p, magicV2}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			t.Fatal(err)
		}
		old := append([]byte(f.magic), make([]byte, 2*page-len(f.magic))...)
		if err := os.WriteFile(f.path, old, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := open(t, Config{Dir: dir})
	for _, q := range []string{oldPath, oldPath + ".tmp3"} {
		if _, err := os.Stat(q); !os.IsNotExist(err) {
			t.Fatalf("file of an earlier format left: %v", err)
		}
	}
	if _, ok := c.Get(k); ok {
		t.Fatal("a format 2 block was served")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("format 2 file left: %v", err)
	}
}

// TestKeyTooLong: a key whose header would pass a page is not kept.
func TestKeyTooLong(t *testing.T) {
	c := open(t, Config{Dir: t.TempDir()})
	k := Key{Bucket: "b", Object: string(bytes.Repeat([]byte("k"), page)), ETag: `"e"`, BlockSize: bs}
	c.PutNow(k, block(1, bs))
	if s := c.Stats(); s.Blocks != 0 || s.Bytes != 0 || s.Off != "" {
		t.Fatalf("stats %+v", s)
	}
}

// TestSums: a SumReader's sum of each block read through it, in reads of
// any size, is Sum of the block; a block handed over with a wrong sum is
// never served.
func TestSums(t *testing.T) {
	data := block(9, 3*bs+17)
	for _, chunk := range []int{1, 7, 1000, bs, 10 * bs} {
		s := &SumReader{R: iotest.OneByteReader(bytes.NewReader(data))}
		if chunk > 1 {
			s.R = &chunked{bytes.NewReader(data), chunk}
		}
		for off := 0; off < len(data); off += bs {
			want := data[off:min(off+bs, len(data))]
			got := make([]byte, len(want))
			if _, err := io.ReadFull(s, got); err != nil {
				t.Fatal(err)
			}
			if sum := s.Next(); sum != Sum(want) {
				t.Fatalf("reads of %d: block at %d summed %08x, want %08x", chunk, off, sum, Sum(want))
			}
		}
	}

	c := open(t, Config{Dir: t.TempDir()})
	b := block(1, bs)
	c.PutSum(context.Background(), key("k", 0), b, Sum(b)^1, nil)
	settle(t, c, 1)
	if _, ok := c.Get(key("k", 0)); ok {
		t.Fatal("a block with a wrong sum was served")
	}
	if s := c.Stats(); s.Errors != 1 || s.Blocks != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// chunked returns at most n bytes a read.
type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(b []byte) (int, error) { return c.r.Read(b[:min(len(b), c.n)]) }
