// Package storetest is a conformance suite for store.ObjectStore and
// store.Writer implementations. It pins down the S3 semantics the cache and
// fs layers rely on, so memstore and the S3 client (against a real server)
// are checked against the same expectations.
//
// The suite only uses keys a POSIX-backed server accepts; keys such as "a"
// beside "a/b" are the business of implementation-specific tests.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// NewStoreFunc returns a store, its writer and the name of a bucket that
// already exists and is empty. It is called once per subtest.
type NewStoreFunc func(t *testing.T) (store.ObjectStore, store.Writer, string)

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, newStore func(t *testing.T) (store.ObjectStore, store.Writer, string)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore NewStoreFunc)
	}{
		{"ListBuckets", testListBuckets},
		{"List", testList},
		{"Paging", testPaging},
		{"Stat", testStat},
		{"ReadAt", testReadAt},
		{"ETagPinning", testETagPinning},
		// The same ranges and pinning, read through ReadRange's stream.
		{"ReadRange", func(t *testing.T, n NewStoreFunc) { testReadAt(t, viaReadRange(n)) }},
		{"ReadRangePinning", func(t *testing.T, n NewStoreFunc) { testETagPinning(t, viaReadRange(n)) }},
		{"OverwriteAndDelete", testOverwriteAndDelete},
		{"Multipart40MiB", testMultipart},
	}
	tests = append(tests, writeTests[:]...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

// viaReadRange wraps the stores newStore makes so that ReadAt reads through
// ReadRange, letting the ReadAt tests check the streaming path too.
func viaReadRange(newStore NewStoreFunc) NewStoreFunc {
	return func(t *testing.T) (store.ObjectStore, store.Writer, string) {
		s, w, b := newStore(t)
		return rangeReadAt{s}, w, b
	}
}

type rangeReadAt struct{ store.ObjectStore }

func (r rangeReadAt) ReadAt(ctx context.Context, bucket, key, etag string, p []byte, off int64) (int, error) {
	rc, err := r.ReadRange(ctx, bucket, key, etag, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err == io.EOF || err == io.ErrUnexpectedEOF { // a clean end before len(p)
		return n, io.EOF
	}
	return n, err
}

// pattern returns n deterministic pseudo-random bytes derived from seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	return p
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(ctx context.Context, t *testing.T, w store.Writer, bucket, key string, data []byte) store.Object {
	t.Helper()
	o, err := store.Put(ctx, w, bucket, key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return o
}

// missingBucket is a valid bucket name nobody has created.
func missingBucket() string {
	return fmt.Sprintf("bfs-missing-%016x", rand.Uint64())
}

func testListBuckets(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, bucket := newStore(t)
	bs, err := s.ListBuckets(ctx)
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	for _, b := range bs {
		if b.Name == bucket {
			return
		}
	}
	t.Errorf("ListBuckets = %v, missing %q", bs, bucket)
}

// fixture is a small tree with nested prefixes, a directory marker object
// ("dir/") and files at the top level.
var fixture = []string{"a/1", "a/2", "b", "c/1", "c/d/2", "dir/", "dir/x", "e"}

func seedFixture(ctx context.Context, t *testing.T, w store.Writer, bucket string) {
	t.Helper()
	for _, k := range fixture {
		data := []byte(k)
		if strings.HasSuffix(k, "/") {
			data = nil // markers are empty, as S3 consoles create them
		}
		put(ctx, t, w, bucket, k, data)
	}
}

func testList(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	seedFixture(ctx, t, w, bucket)
	tests := []struct {
		prefix, delim string
		objects       []string
		prefixes      []string
	}{
		{"", "/", []string{"b", "e"}, []string{"a/", "c/", "dir/"}},
		{"", "", fixture, nil},
		{"a/", "", []string{"a/1", "a/2"}, nil},
		{"c/", "/", []string{"c/1"}, []string{"c/d/"}},
		{"c/d/", "/", []string{"c/d/2"}, nil},
		{"dir/", "/", []string{"dir/", "dir/x"}, nil},
		{"c", "/", nil, []string{"c/"}},
		{"zzz", "/", nil, nil},
		{"zzz/", "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("prefix=%q,delim=%q", tc.prefix, tc.delim), func(t *testing.T) {
			page, err := s.List(ctx, store.ListInput{Bucket: bucket, Prefix: tc.prefix, Delimiter: tc.delim})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := keys(page.Objects); !equal(got, tc.objects) {
				t.Errorf("objects = %q, want %q", got, tc.objects)
			}
			if !equal(page.Prefixes, tc.prefixes) {
				t.Errorf("prefixes = %q, want %q", page.Prefixes, tc.prefixes)
			}
			if page.NextToken != "" {
				t.Errorf("NextToken = %q on a complete listing", page.NextToken)
			}
			for _, o := range page.Objects {
				wantSize := int64(len(o.Key))
				if strings.HasSuffix(o.Key, "/") {
					wantSize = 0
				}
				if o.Size != wantSize {
					t.Errorf("%s: size %d, want %d", o.Key, o.Size, wantSize)
				}
				if o.ETag == "" || strings.Contains(o.ETag, `"`) {
					t.Errorf("%s: ETag %q, want non-empty without quotes", o.Key, o.ETag)
				}
				if o.ModTime.IsZero() {
					t.Errorf("%s: zero ModTime", o.Key)
				}
			}
		})
	}
	t.Run("missing bucket", func(t *testing.T) {
		_, err := s.List(ctx, store.ListInput{Bucket: missingBucket(), Delimiter: "/"})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("List(missing bucket) = %v, want ErrNotFound", err)
		}
	})
}

func keys(os []store.Object) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.Key)
	}
	return out
}

// equal treats nil and empty as the same.
func equal(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func testPaging(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	seedFixture(ctx, t, w, bucket)
	tests := []struct {
		prefix, delim string
		want          []string // objects and prefixes in listing order
	}{
		{"", "/", []string{"a/", "b", "c/", "dir/", "e"}},
		{"", "", fixture},
		{"c/", "/", []string{"c/1", "c/d/"}},
		{"dir/", "", []string{"dir/", "dir/x"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("prefix=%q,delim=%q", tc.prefix, tc.delim), func(t *testing.T) {
			var got []string
			token := ""
			pages := 0
			for {
				page, err := s.List(ctx, store.ListInput{Bucket: bucket, Prefix: tc.prefix, Delimiter: tc.delim, Token: token, MaxKeys: 2})
				if err != nil {
					t.Fatalf("List page %d: %v", pages, err)
				}
				pages++
				items := append(keys(page.Objects), page.Prefixes...)
				if len(items) > 2 {
					t.Errorf("page %d has %d items with MaxKeys=2: %q", pages, len(items), items)
				}
				// Within a page objects and prefixes come back in two
				// lists; their merged order is the byte order.
				slices.Sort(items)
				got = append(got, items...)
				if page.NextToken == "" {
					break
				}
				if len(items) == 0 {
					t.Fatalf("page %d is empty but has a NextToken", pages)
				}
				if pages > len(tc.want)+1 {
					t.Fatalf("more than %d pages: listing does not end", pages)
				}
				token = page.NextToken
			}
			if !equal(got, tc.want) {
				t.Errorf("paged listing = %q, want %q", got, tc.want)
			}
			// S3 may end with an empty page when the count divides evenly,
			// but never needs more than one page beyond the full ones.
			if max := (len(tc.want)+1)/2 + 1; pages > max {
				t.Errorf("%d pages, want at most %d", pages, max)
			}
		})
	}
}

func testStat(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	seedFixture(ctx, t, w, bucket)
	start := time.Now()
	data := pattern(1, 1234)
	p := put(ctx, t, w, bucket, "c/file", data)
	tests := []struct {
		name, bucket, key string
		size              int64
		err               error
	}{
		{"file", bucket, "c/file", int64(len(data)), nil},
		{"top-level file", bucket, "b", 1, nil},
		{"dir marker", bucket, "dir/", 0, nil},
		{"missing key", bucket, "nope", 0, store.ErrNotFound},
		{"missing nested key", bucket, "c/nope/x", 0, store.ErrNotFound},
		{"missing bucket", missingBucket(), "c/file", 0, store.ErrNotFound},
		{"key below a file", bucket, "b/x", 0, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := s.Stat(ctx, tc.bucket, tc.key)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Stat(%s/%s) = %+v, %v; want %v", tc.bucket, tc.key, o, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Stat(%s/%s): %v", tc.bucket, tc.key, err)
			}
			if o.Key != tc.key || o.Size != tc.size {
				t.Errorf("Stat = %+v, want key %q size %d", o, tc.key, tc.size)
			}
			if o.ETag == "" || strings.Contains(o.ETag, `"`) {
				t.Errorf("ETag %q, want non-empty without quotes", o.ETag)
			}
		})
	}
	t.Run("matches Put and List", func(t *testing.T) {
		o, err := s.Stat(ctx, bucket, "c/file")
		if err != nil {
			t.Fatal(err)
		}
		if p.ETag != o.ETag {
			t.Errorf("Put ETag %q, Stat ETag %q", p.ETag, o.ETag)
		}
		// Servers keep whole seconds; allow for that and a little skew.
		if o.ModTime.Before(start.Add(-2*time.Minute)) || o.ModTime.After(time.Now().Add(2*time.Minute)) {
			t.Errorf("ModTime %v not near now %v", o.ModTime, start)
		}
		page, err := s.List(ctx, store.ListInput{Bucket: bucket, Prefix: "c/file"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Objects) != 1 || page.Objects[0].ETag != o.ETag || page.Objects[0].Size != o.Size {
			t.Errorf("List = %+v, Stat = %+v", page.Objects, o)
		}
	})
}

func testReadAt(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	data := pattern(2, 1000)
	o := put(ctx, t, w, bucket, "r/data", data)
	put(ctx, t, w, bucket, "r/empty", nil)
	tests := []struct {
		name    string
		key     string
		off     int64
		len     int
		wantN   int
		wantEOF bool // io.EOF required; otherwise nil or io.EOF when n == len
	}{
		{"start", "r/data", 0, 10, 10, false},
		{"middle", "r/data", 500, 100, 100, false},
		{"tail", "r/data", 900, 100, 100, false},
		{"exact end", "r/data", 999, 1, 1, false},
		{"whole", "r/data", 0, 1000, 1000, false},
		{"past end", "r/data", 995, 10, 5, true},
		{"larger than object", "r/data", 0, 4096, 1000, true},
		{"at end", "r/data", 1000, 10, 0, true},
		{"after end", "r/data", 5000, 10, 0, true},
		{"empty object", "r/empty", 0, 10, 0, true},
	}
	for _, tc := range tests {
		for _, etag := range []string{"", o.ETag} {
			if etag != "" && tc.key != "r/data" {
				continue
			}
			t.Run(fmt.Sprintf("%s,pinned=%v", tc.name, etag != ""), func(t *testing.T) {
				p := make([]byte, tc.len)
				n, err := store.ReadAt(ctx, s, bucket, tc.key, etag, p, tc.off)
				if n != tc.wantN {
					t.Fatalf("ReadAt(off=%d,len=%d) n = %d (err %v), want %d", tc.off, tc.len, n, err, tc.wantN)
				}
				switch {
				case tc.wantEOF && err != io.EOF:
					t.Errorf("err = %v, want io.EOF", err)
				case !tc.wantEOF && err != nil && err != io.EOF:
					t.Errorf("err = %v", err)
				}
				if n > 0 && !bytes.Equal(p[:n], data[tc.off:tc.off+int64(n)]) {
					t.Errorf("wrong bytes at off=%d", tc.off)
				}
			})
		}
	}
	t.Run("missing key", func(t *testing.T) {
		_, err := store.ReadAt(ctx, s, bucket, "r/nope", "", make([]byte, 10), 0)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		_, err := store.ReadAt(ctx, s, missingBucket(), "r/data", "", make([]byte, 10), 0)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func testETagPinning(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	v1, v2 := pattern(3, 300), pattern(4, 300)
	o1 := put(ctx, t, w, bucket, "pin", v1)
	st, err := s.Stat(ctx, bucket, "pin")
	if err != nil {
		t.Fatal(err)
	}
	if st.ETag != o1.ETag {
		t.Fatalf("Stat ETag %q != Put ETag %q", st.ETag, o1.ETag)
	}
	p := make([]byte, 100)
	if _, err := store.ReadAt(ctx, s, bucket, "pin", o1.ETag, p, 100); err != nil {
		t.Fatalf("pinned read of current version: %v", err)
	}
	o2 := put(ctx, t, w, bucket, "pin", v2)
	if o2.ETag == o1.ETag {
		t.Fatalf("different content, same ETag %q", o2.ETag)
	}
	tests := []struct {
		name string
		etag string
		off  int64
		want []byte
		err  error
	}{
		{"old etag", o1.ETag, 100, nil, store.ErrChanged},
		{"old etag at start", o1.ETag, 0, nil, store.ErrChanged},
		{"new etag", o2.ETag, 100, v2[100:200], nil},
		{"unpinned", "", 100, v2[100:200], nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, 100)
			n, err := store.ReadAt(ctx, s, bucket, "pin", tc.etag, p, tc.off)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ReadAt = %d, %v; want %v", n, err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(p[:n], tc.want) {
				t.Fatalf("ReadAt = %d, %v; want the new bytes", n, err)
			}
		})
	}
}

func testOverwriteAndDelete(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	put(ctx, t, w, bucket, "x/y", []byte("first version"))
	put(ctx, t, w, bucket, "x/y", []byte("second"))
	o, err := s.Stat(ctx, bucket, "x/y")
	if err != nil || o.Size != 6 {
		t.Fatalf("Stat after overwrite = %+v, %v; want size 6", o, err)
	}
	if err := w.Delete(ctx, bucket, "x/y"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, bucket, "x/y"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if err := w.Delete(ctx, bucket, "x/y"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil (S3 deletes are idempotent)", err)
	}
	page, err := s.List(ctx, store.ListInput{Bucket: bucket, Delimiter: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects)+len(page.Prefixes) != 0 {
		t.Errorf("bucket not empty after Delete: %+v", page)
	}
	if err := w.CreateBucket(ctx, bucket); err != nil {
		t.Errorf("CreateBucket of an existing own bucket: %v, want nil", err)
	}
}

func testMultipart(t *testing.T, newStore NewStoreFunc) {
	if testing.Short() {
		t.Skip("40 MiB upload skipped in -short mode")
	}
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	const size = 40 << 20
	data := pattern(5, size)
	want := sha256.Sum256(data)
	o := put(ctx, t, w, bucket, "big/object.bin", data)
	if o.Size != size {
		t.Errorf("Put size %d, want %d", o.Size, size)
	}
	st, err := s.Stat(ctx, bucket, "big/object.bin")
	if err != nil || st.Size != size {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	h := sha256.New()
	buf := make([]byte, 3<<20) // not a divisor of the part size
	for off := int64(0); ; {
		n, err := store.ReadAt(ctx, s, bucket, "big/object.bin", st.ETag, buf, off)
		h.Write(buf[:n])
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadAt(off=%d): %v", off, err)
		}
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("sha256 of read-back %x, want %x", got, want)
	}
}
