package cache

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixture is a memory store with keys, a counting wrapper and a cache.
type fixture struct {
	mem   *memstore.Store
	fault *faultstore.Store
	clock *fakeClock
	c     *Cache
}

func newFixture(t testing.TB, cfg Config, keys map[string]string) *fixture {
	t.Helper()
	ctx := context.Background()
	mem := memstore.New()
	if err := mem.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	for k, v := range keys {
		if _, err := mem.Put(ctx, "b", k, bytes.NewReader([]byte(v)), int64(len(v))); err != nil {
			t.Fatal(err)
		}
	}
	fs := faultstore.New(mem)
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg.Now = clock.Now
	return &fixture{mem: mem, fault: fs, clock: clock, c: New(fs, cfg)}
}

func (f *fixture) counts() map[string]int64 {
	return map[string]int64{
		"List": f.fault.Count(faultstore.OpList),
		"Stat": f.fault.Count(faultstore.OpStat),
	}
}

func readAll(t *testing.T, c *Cache, bucket, prefix string) []DirEntry {
	t.Helper()
	r, _ := c.ReadDir(context.Background(), bucket, prefix)
	var out []DirEntry
	for {
		e, ok, err := r.Next(context.Background())
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", prefix, err)
		}
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

func names(es []DirEntry) []string {
	var out []string
	for _, e := range es {
		s := e.Name
		if e.Kind.Has(KindDir) {
			s += "/"
		}
		if e.Kind.Has(KindFile | KindDir) {
			s += "+file"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestReadDirEntries(t *testing.T) {
	keys := map[string]string{
		"top.csv":       "1",
		"a":             "shadowed file",
		"a-1":           "x",
		"a.txt":         "x",
		"a/inner":       "x",
		"marker/":       "",
		"dir/x":         "x",
		"dir/y":         "y",
		"dir/":          "",
		"dir/sub/z":     "z",
		"weird//double": "x",
	}
	tests := []struct {
		name     string
		prefix   string
		pageSize int
		want     []string
	}{
		{"root", "", 0, []string{"a-1", "a.txt", "a/+file", "dir/", "marker/", "top.csv", "weird/"}},
		{"root in pages of one", "", 1, []string{"a-1", "a.txt", "a/+file", "dir/", "marker/", "top.csv", "weird/"}},
		{"root in pages of two", "", 2, []string{"a-1", "a.txt", "a/+file", "dir/", "marker/", "top.csv", "weird/"}},
		{"subdir skips its marker", "dir/", 0, []string{"sub/", "x", "y"}},
		{"empty marker dir", "marker/", 0, nil},
		{"empty segment shows as empty name", "weird/", 0, []string{"/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{ListPageSize: tt.pageSize}, keys)
			got := names(readAll(t, f.c, "b", tt.prefix))
			if !equalStrings(got, tt.want) {
				t.Errorf("entries = %q, want %q", got, tt.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// After a listing, looking up and statting every entry costs nothing, and a
// second listing is served from the cache.
func TestListingFeedsLookups(t *testing.T) {
	keys := map[string]string{"d/f1": "1", "d/f2": "22", "d/sub/x": "x", "d/both": "b", "d/both/y": "y"}
	f := newFixture(t, Config{ListPageSize: 2}, keys)
	ctx := context.Background()
	entries := readAll(t, f.c, "b", "d/")
	listCalls := f.fault.Count(faultstore.OpList)
	if listCalls != 3 { // 5 names in pages of 2
		t.Errorf("LIST calls for the directory = %d, want 3", listCalls)
	}
	for _, e := range entries {
		n, err := f.c.Lookup(ctx, "b", "d/"+e.Name)
		if err != nil || n.Kind != e.Kind {
			t.Errorf("Lookup(%s) = %v, %v; want kind %v", e.Name, n, err, e.Kind)
		}
		if e.Kind.Has(KindFile) {
			o, err := f.c.statFile(ctx, "b", "d/"+e.Name)
			if err != nil || o.Size != int64(len(keys["d/"+e.Name])) {
				t.Errorf("StatFile(%s) = %+v, %v", e.Name, o, err)
			}
		}
	}
	// A name that is not in the complete listing is known absent.
	if _, err := f.c.Lookup(ctx, "b", "d/missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup(missing) err = %v, want ErrNotFound", err)
	}
	readAll(t, f.c, "b", "d/")
	got := f.counts()
	if got["List"] != listCalls || got["Stat"] != 0 {
		t.Errorf("requests after the listing = %v, want no new LIST and no HEAD", got)
	}
}

func TestLookupMissAndTTL(t *testing.T) {
	keys := map[string]string{"file": "abc", "dir/x": "x", "both": "b", "both/y": "y"}
	ctx := context.Background()
	tests := []struct {
		key      string
		wantKind Kind
		wantErr  error
	}{
		{"file", KindFile, nil},
		{"dir", KindDir, nil},
		{"both", KindFile | KindDir, nil},
		{"nothing", 0, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			f := newFixture(t, Config{MetadataTTL: time.Minute, NegativeTTL: 5 * time.Second}, keys)
			n, err := f.c.Lookup(ctx, "b", tt.key)
			if !errors.Is(err, tt.wantErr) || (err == nil && n.Kind != tt.wantKind) {
				t.Fatalf("Lookup = %+v, %v; want kind %v err %v", n, err, tt.wantKind, tt.wantErr)
			}
			if c := f.counts(); c["List"] != 1 || c["Stat"] != 1 {
				t.Fatalf("first lookup sent %v, want one HEAD and one LIST", c)
			}
			f.c.Lookup(ctx, "b", tt.key)
			if c := f.counts(); c["List"] != 1 || c["Stat"] != 1 {
				t.Fatalf("second lookup within TTL sent %v, want nothing more", c)
			}
			// Negative answers expire after NegativeTTL, positive after MetadataTTL.
			f.clock.Advance(6 * time.Second)
			f.c.Lookup(ctx, "b", tt.key)
			c := f.counts()
			// Each negative half of the answer (no object, no "key/") is asked again.
			want := int64(2)
			if !tt.wantKind.Has(KindFile) {
				want++
			}
			if !tt.wantKind.Has(KindDir) {
				want++
			}
			if c["List"]+c["Stat"] != want {
				t.Errorf("after the negative TTL: %v requests, want %d in all", c, want)
			}
			f.clock.Advance(time.Minute)
			f.c.Lookup(ctx, "b", tt.key)
			if c := f.counts(); c["List"] < 2 || c["Stat"] < 2 {
				t.Errorf("after the metadata TTL: %v, want both asked again", c)
			}
		})
	}
}

// Concurrent lookups of one name share one HEAD and one LIST.
func TestLookupDeduplicates(t *testing.T) {
	f := newFixture(t, Config{}, map[string]string{"k": "v"})
	gate := make(chan struct{})
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		<-gate
		return nil
	})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.c.Lookup(context.Background(), "b", "k"); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	if c := f.counts(); c["List"] != 1 || c["Stat"] != 1 {
		t.Errorf("20 concurrent lookups sent %v, want one HEAD and one LIST", c)
	}
}

func TestCheckBucket(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	ctx := context.Background()
	f.mem.CreateBucket(ctx, "locked")
	f.mem.SetAccessDenied("locked", true)
	tests := []struct {
		bucket string
		want   error
	}{
		{"b", nil},
		{"nope", store.ErrNotFound},
		{"locked", store.ErrAccessDenied},
	}
	for _, tt := range tests {
		if err := f.c.CheckBucket(ctx, tt.bucket); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("CheckBucket(%s) = %v, want %v", tt.bucket, err, tt.want)
		}
	}
	before := f.fault.Count(faultstore.OpList)
	f.c.CheckBucket(ctx, "b")
	f.c.CheckBucket(ctx, "nope")
	if got := f.fault.Count(faultstore.OpList); got != before {
		t.Errorf("repeated checks sent %d LISTs, want none", got-before)
	}
}

func TestBucketsCached(t *testing.T) {
	f := newFixture(t, Config{MetadataTTL: time.Minute}, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		bs, err := f.c.Buckets(ctx)
		if err != nil || len(bs) != 1 || bs[0].Name != "b" {
			t.Fatalf("Buckets = %v, %v", bs, err)
		}
	}
	if n := f.fault.Count(faultstore.OpListBuckets); n != 1 {
		t.Errorf("ListBuckets calls = %d, want 1", n)
	}
	f.clock.Advance(2 * time.Minute)
	f.c.Buckets(ctx)
	if n := f.fault.Count(faultstore.OpListBuckets); n != 2 {
		t.Errorf("ListBuckets calls after TTL = %d, want 2", n)
	}
}

// Opening a path on a fresh mount: resolving a directory also caches its
// first page, so the next component costs no request, and a directory
// that fits in one page needs no listing later.
func TestLookupCachesFirstPage(t *testing.T) {
	keys := map[string]string{"data/flights.csv": "a,b", "data/more.csv": "c", "big/a": "1", "big/b": "2", "big/c": "3"}
	f := newFixture(t, Config{ListPageSize: 2}, keys)
	ctx := context.Background()
	if n, err := f.c.Lookup(ctx, "b", "data"); err != nil || n.Kind != KindDir {
		t.Fatalf("Lookup(data) = %+v, %v", n, err)
	}
	before := f.counts()
	if n, err := f.c.Lookup(ctx, "b", "data/flights.csv"); err != nil || n.Kind != KindFile || n.Object.Size != 3 {
		t.Fatalf("Lookup(data/flights.csv) = %+v, %v", n, err)
	}
	if _, err := f.c.Lookup(ctx, "b", "data/nope.csv"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Lookup(data/nope.csv) err = %v", err)
	}
	readAll(t, f.c, "b", "data/")
	if after := f.counts(); after["List"] != before["List"] || after["Stat"] != before["Stat"] {
		t.Errorf("after resolving data: %v, then %v; want no more requests for its entries", before, after)
	}
	// A directory larger than a page: its first entries are known, the rest is listed as usual.
	f.c.Lookup(ctx, "b", "big")
	before = f.counts()
	if n, err := f.c.Lookup(ctx, "b", "big/a"); err != nil || n.Kind != KindFile {
		t.Fatalf("Lookup(big/a) = %+v, %v", n, err)
	}
	if es := readAll(t, f.c, "b", "big/"); len(es) != 3 {
		t.Fatalf("big/ = %v", es)
	}
	if after := f.counts(); after["Stat"] != before["Stat"] || after["List"] != before["List"]+2 {
		t.Errorf("big: %v then %v; want no HEAD and two pages for the listing", before, after)
	}
}
