package memstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.ObjectStore, store.Writer, string) {
		s := New()
		if err := s.CreateBucket(t.Context(), "bucket"); err != nil {
			t.Fatal(err)
		}
		return s, s, "bucket"
	})
}

func mustPut(t *testing.T, s *Store, bucket, key, data string) store.Object {
	t.Helper()
	o, err := s.Put(t.Context(), bucket, key, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return o
}

// listAll pages through a listing and returns items (objects and prefixes,
// prefixes marked with a trailing "*") in merged byte order.
func listAll(t *testing.T, s store.ObjectStore, in store.ListInput) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("listing does not end")
		}
		page, err := s.List(t.Context(), in)
		if err != nil {
			t.Fatalf("List(%+v): %v", in, err)
		}
		var items []string
		for _, o := range page.Objects {
			items = append(items, o.Key)
		}
		for _, p := range page.Prefixes {
			items = append(items, p+"*")
		}
		if in.MaxKeys > 0 && len(items) > in.MaxKeys {
			t.Fatalf("page of %d items with MaxKeys %d", len(items), in.MaxKeys)
		}
		out = append(out, items...)
		if page.NextToken == "" {
			break
		}
		if len(items) == 0 {
			t.Fatal("empty page with a NextToken")
		}
		in.Token = page.NextToken
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.TrimSuffix(a, "*"), strings.TrimSuffix(b, "*")) })
	return out
}

// reference computes a ListObjectsV2 result the slow, obvious way.
func reference(keys []string, prefix, delim string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		item := k
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				item = k[:len(prefix)+i+len(delim)] + "*"
			}
		}
		if !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.TrimSuffix(a, "*"), strings.TrimSuffix(b, "*")) })
	return out
}

// S3 accepts keys a POSIX file system cannot hold; memstore must too.
var oddKeys = []string{
	"a", "a/b", "a/b/c", "a//b", "//", "/lead", "..", "../x", "./y",
	"dir/", "dir/f", "ünïcødé/ファイル", strings.Repeat("n", 300),
	"sp ace", "a+b", "a%2Fb", "tab\tkey", "a-b", "a.b", "a0",
}

func TestOddKeys(t *testing.T) {
	s := New()
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	for _, k := range oddKeys {
		mustPut(t, s, "b", k, "content of "+k)
	}
	for _, k := range oddKeys {
		o, err := s.Stat(ctx, "b", k)
		if err != nil || o.Size != int64(len("content of "+k)) {
			t.Errorf("Stat(%q) = %+v, %v", k, o, err)
		}
		p := make([]byte, 1000)
		n, _ := s.ReadAt(ctx, "b", k, "", p, 0)
		if string(p[:n]) != "content of "+k {
			t.Errorf("ReadAt(%q) = %q", k, p[:n])
		}
	}
	tests := []struct {
		prefix, delim string
	}{
		{"", ""}, {"", "/"}, {"a", "/"}, {"a/", "/"}, {"/", "/"}, {"a/", ""},
		{"dir/", "/"}, {"..", "/"}, {"", "b"}, {"a", "//"}, {"ü", "/"}, {"zz", "/"},
	}
	for _, tc := range tests {
		want := reference(oddKeys, tc.prefix, tc.delim)
		for _, max := range []int{0, 1, 2, 3, 7} {
			t.Run(fmt.Sprintf("%q,%q,max=%d", tc.prefix, tc.delim, max), func(t *testing.T) {
				got := listAll(t, s, store.ListInput{Bucket: "b", Prefix: tc.prefix, Delimiter: tc.delim, MaxKeys: max})
				if !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
					t.Errorf("got  %q\nwant %q", got, want)
				}
			})
		}
	}
}

// TestListRandom compares paged listings of random trees with the reference.
func TestListRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "/", "-", "ab", "z/"}
	for round := 0; round < 30; round++ {
		s := New()
		if err := s.CreateBucket(t.Context(), "b"); err != nil {
			t.Fatal(err)
		}
		var ks []string
		for i := 0; i < 1+r.IntN(60); i++ {
			var sb strings.Builder
			for j := 0; j < 1+r.IntN(6); j++ {
				sb.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			k := sb.String()
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
				mustPut(t, s, "b", k, k)
			}
		}
		for _, prefix := range []string{"", "a", "a/", "b/", "/"} {
			for _, delim := range []string{"", "/", "b"} {
				want := reference(ks, prefix, delim)
				max := 1 + r.IntN(5)
				got := listAll(t, s, store.ListInput{Bucket: "b", Prefix: prefix, Delimiter: delim, MaxKeys: max})
				if !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
					t.Fatalf("round %d keys %q prefix %q delim %q max %d:\ngot  %q\nwant %q", round, ks, prefix, delim, max, got, want)
				}
			}
		}
	}
}

func TestListPageBoundaries(t *testing.T) {
	s := New()
	if err := s.CreateBucket(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/1", "a/2", "b", "c/1", "d"} {
		mustPut(t, s, "b", k, "x")
	}
	// Exact S3 page contents: a prefix counts as one item and the last
	// full page carries no token.
	tests := []struct {
		max      int
		objects  [][]string
		prefixes [][]string
	}{
		{2, [][]string{{"b"}, {"d"}}, [][]string{{"a/"}, {"c/"}}},
		{4, [][]string{{"b", "d"}}, [][]string{{"a/", "c/"}}},
		{1, [][]string{nil, {"b"}, nil, {"d"}}, [][]string{{"a/"}, nil, {"c/"}, nil}},
	}
	for _, tc := range tests {
		token := ""
		for i := range tc.objects {
			page, err := s.List(t.Context(), store.ListInput{Bucket: "b", Delimiter: "/", MaxKeys: tc.max, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			var ks []string
			for _, o := range page.Objects {
				ks = append(ks, o.Key)
			}
			if !reflect.DeepEqual(ks, tc.objects[i]) || !reflect.DeepEqual(page.Prefixes, tc.prefixes[i]) {
				t.Errorf("max %d page %d = %q %q, want %q %q", tc.max, i, ks, page.Prefixes, tc.objects[i], tc.prefixes[i])
			}
			last := i == len(tc.objects)-1
			if (page.NextToken == "") != last {
				t.Errorf("max %d page %d: NextToken %q, last page %v", tc.max, i, page.NextToken, last)
			}
			token = page.NextToken
		}
	}
	if _, err := s.List(t.Context(), store.ListInput{Bucket: "b", Token: "!!not a token"}); err == nil {
		t.Error("List with a garbage token succeeded")
	}
}

func TestETagAndClock(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	o := mustPut(t, s, "b", "k", "hello")
	sum := md5.Sum([]byte("hello"))
	if o.ETag != hex.EncodeToString(sum[:]) || !o.ModTime.Equal(now) {
		t.Errorf("Put = %+v, want md5 ETag and ModTime %v", o, now)
	}
	now = now.Add(time.Hour)
	o2 := mustPut(t, s, "b", "k", "hello")
	st, err := s.Stat(ctx, "b", "k")
	if err != nil || st.ETag != o.ETag || !st.ModTime.Equal(now) || !o2.ModTime.Equal(now) {
		t.Errorf("Stat after rewrite = %+v, %v; want same ETag, ModTime %v", st, err, now)
	}
	bs, err := s.ListBuckets(ctx)
	if err != nil || len(bs) != 1 || !bs[0].Created.Equal(now.Add(-time.Hour)) {
		t.Errorf("ListBuckets = %+v, %v", bs, err)
	}
}

func TestAccessDenied(t *testing.T) {
	s := New()
	ctx := t.Context()
	for _, b := range []string{"open", "secret"} {
		if err := s.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, b, "k", "v")
	}
	s.SetAccessDenied("secret", true)
	s.SetAccessDenied("never-created", true)
	calls := []struct {
		name string
		call func(bucket string) error
	}{
		{"List", func(b string) error { _, err := s.List(ctx, store.ListInput{Bucket: b}); return err }},
		{"Stat", func(b string) error { _, err := s.Stat(ctx, b, "k"); return err }},
		{"ReadAt", func(b string) error { _, err := s.ReadAt(ctx, b, "k", "", make([]byte, 1), 0); return err }},
		{"Put", func(b string) error { _, err := s.Put(ctx, b, "k2", strings.NewReader("x"), 1); return err }},
		{"Delete", func(b string) error { return s.Delete(ctx, b, "k") }},
		{"CreateBucket", func(b string) error { return s.CreateBucket(ctx, b) }},
	}
	for _, c := range calls {
		for _, b := range []string{"secret", "never-created"} {
			if err := c.call(b); !errors.Is(err, store.ErrAccessDenied) {
				t.Errorf("%s(%s) = %v, want ErrAccessDenied", c.name, b, err)
			}
		}
		if err := c.call("open"); err != nil {
			t.Errorf("%s(open) = %v", c.name, err)
		}
	}
	bs, err := s.ListBuckets(ctx)
	if err != nil || len(bs) != 2 || bs[1].Name != "secret" {
		t.Errorf("ListBuckets = %+v, %v; want both buckets", bs, err)
	}
	s.SetAccessDenied("secret", false)
	if _, err := s.Stat(ctx, "secret", "k"); err != nil {
		t.Errorf("Stat after lifting the denial: %v", err)
	}
}

func TestErrors(t *testing.T) {
	s := New()
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "b", "k", "v")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"Delete missing bucket", s.Delete(ctx, "nb", "k"), store.ErrNotFound},
		{"Put missing bucket", func() error { _, err := s.Put(ctx, "nb", "k", strings.NewReader(""), 0); return err }(), store.ErrNotFound},
		{"ReadAt missing key with etag", func() error { _, err := s.ReadAt(ctx, "b", "nope", "abc", make([]byte, 1), 0); return err }(), store.ErrNotFound},
		{"ReadAt wrong etag past end", func() error { _, err := s.ReadAt(ctx, "b", "k", "abc", make([]byte, 1), 99); return err }(), store.ErrChanged},
		{"Stat canceled", func() error { _, err := s.Stat(canceled, "b", "k"); return err }(), context.Canceled},
		{"Put short body", func() error { _, err := s.Put(ctx, "b", "k", strings.NewReader("ab"), 5); return err }(), nil},
	}
	for _, tc := range tests {
		if tc.want == nil {
			if tc.err == nil {
				t.Errorf("%s: succeeded, want an error", tc.name)
			}
			continue
		}
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if o, err := s.Stat(ctx, "b", "k"); err != nil || o.Size != 1 {
		t.Errorf("failed Put changed the object: %+v, %v", o, err)
	}
}

// TestPutCopies checks the store keeps its own copy of the body.
func TestPutCopies(t *testing.T) {
	s := New()
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	buf := []byte("original")
	if _, err := s.Put(ctx, "b", "k", bytes.NewReader(buf), int64(len(buf))); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX")
	p := make([]byte, 8)
	if n, _ := s.ReadAt(ctx, "b", "k", "", p, 0); string(p[:n]) != "original" {
		t.Errorf("read %q after the caller reused its buffer", p[:n])
	}
}

func TestConcurrent(t *testing.T) {
	s := New()
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := fmt.Sprintf("d%d/k%03d", g, i%20)
				if _, err := s.Put(ctx, "b", k, strings.NewReader(k), int64(len(k))); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.List(ctx, store.ListInput{Bucket: "b", Prefix: fmt.Sprintf("d%d/", g), MaxKeys: 3}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if err := s.Delete(ctx, "b", k); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	got := listAll(t, s, store.ListInput{Bucket: "b"})
	for _, k := range got {
		if _, err := s.Stat(ctx, "b", k); err != nil {
			t.Errorf("listed %q but Stat: %v", k, err)
		}
	}
}
