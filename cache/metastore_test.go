package cache

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
)

func TestETagPacking(t *testing.T) {
	tests := []struct {
		etag string
		form uint8
	}{
		{"", etagNone},
		{"9e107d9d372bb6826bd81d3542a419d6", etagHex},
		{"9e107d9d372bb6826bd81d3542a419d6-12", etagHex},
		{"9e107d9d372bb6826bd81d3542a419d6-4294967295", etagHex},
		{"9e107d9d372bb6826bd81d3542a419d6-4294967296", etagRaw}, // part count past uint32
		{"9e107d9d372bb6826bd81d3542a419d6-012", etagRaw},        // would not print back the same
		{"9e107d9d372bb6826bd81d3542a419d6-0", etagRaw},
		{"9e107d9d372bb6826bd81d3542a419d6-", etagRaw},
		{"9E107D9D372BB6826BD81D3542A419D6", etagRaw}, // upper case must come back upper case
		{"9e107d9d372bb6826bd81d3542a419d", etagRaw},
		{"W/\"weak\"", etagRaw},
		{"0000000000000000000000000000000000", etagRaw},
	}
	at := time.Date(2026, 12, 3, 7, 0, 0, 123456789, time.UTC)
	for _, tt := range tests {
		o := store.Object{Key: "d/x", Size: 42, ModTime: at, ETag: tt.etag}
		m, raw := pack(o)
		if m.form != tt.form {
			t.Errorf("%q: form %d, want %d", tt.etag, m.form, tt.form)
		}
		if got := m.object("d/x", raw); got != o {
			t.Errorf("%q: round trip = %+v, want %+v", tt.etag, got, o)
		}
		// And through a listing, where the raw text follows the name.
		l, ok := newListing("d/", 0, []DirEntry{{Name: "x", Kind: KindFile, Object: o}, {Name: "y", Kind: KindDir}})
		if !ok {
			t.Fatal("newListing refused two entries")
		}
		if k, got := l.find("x"); k != KindFile || got != o {
			t.Errorf("%q: listing gives %v %+v", tt.etag, k, got)
		}
		if k, _ := l.find("y"); k != KindDir {
			t.Errorf("%q: y is %v", tt.etag, k)
		}
	}
	if m, _ := pack(store.Object{}); m.object("k", "").ModTime != (time.Time{}) {
		t.Error("the zero time does not come back zero")
	}
}

// The bound holds whatever is put, items are dropped least recently used
// first, and the count returns to zero when everything is removed.
func TestMetaLRUByteAccounting(t *testing.T) {
	put := func(l *metaLRU, i int) {
		l.setName(lkey(keyName, "b", fmt.Sprintf("k%04d", i)), nil, func(it *mitem) { it.objKnown = true })
	}
	one := itemBytes + int64(len(lkey(keyName, "b", "k0000")))
	l := newMetaLRU(10 * one)
	for i := range 25 {
		put(l, i)
		if s := l.stats(); s.Bytes > s.Limit {
			t.Fatalf("after %d puts: %d bytes over the limit %d", i+1, s.Bytes, s.Limit)
		}
	}
	if s := l.stats(); s.Items != 10 || s.Bytes != 10*one || s.Evictions != 15 {
		t.Fatalf("stats = %+v, want 10 items of %d bytes, 15 evictions", s, one)
	}
	// k0015 is the oldest left; using it makes k0016 the next to go.
	if l.get(lkey(keyName, "b", "k0015")) == nil {
		t.Fatal("k0015 was evicted out of order")
	}
	put(l, 99)
	if l.get(lkey(keyName, "b", "k0016")) != nil || l.get(lkey(keyName, "b", "k0015")) == nil {
		t.Error("the least recently used item was not the one evicted")
	}
	// Replacing an item counts it once.
	put(l, 99)
	if s := l.stats(); s.Bytes != 10*one {
		t.Errorf("after a replace: %d bytes, want %d", s.Bytes, 10*one)
	}
	// A listing is counted with its entries, and one larger than the
	// whole bound is not kept.
	big, _ := newListing("d/", 0, manyEntries(10_000))
	l.put(newListItem(lkey(keyList, "b", "d/"), big))
	if s := l.stats(); s.Listings != 0 || s.Bytes > s.Limit {
		t.Errorf("a listing larger than the bound was kept: %+v", s)
	}
	small, _ := newListing("e/", 0, manyEntries(2))
	it := newListItem(lkey(keyList, "b", "e/"), small)
	if it.cost <= small.bytes() || small.bytes() < 2*lentBytes {
		t.Errorf("listing of 2 costs %d (item %d)", small.bytes(), it.cost)
	}
	l.put(it)
	if s := l.stats(); s.Listings != 1 {
		t.Errorf("stats = %+v, want the small listing", s)
	}
	l.purge()
	if s := l.stats(); s.Items != 0 || s.Bytes != 0 || s.Listings != 0 {
		t.Errorf("after removing everything: %+v", s)
	}
}

func manyEntries(n int) []DirEntry {
	es := make([]DirEntry, n)
	for i := range es {
		es[i] = DirEntry{Name: fmt.Sprintf("part-%05d.csv", i), Kind: KindFile,
			Object: store.Object{Key: fmt.Sprintf("d/part-%05d.csv", i), Size: int64(i), ModTime: time.Unix(1_700_000_000, 0).UTC(),
				ETag: fmt.Sprintf("%032x", i)}}
	}
	return es
}

// treeKeys makes dirs directories of per objects each under tree/.
func treeKeys(dirs, per int) map[string]string {
	keys := map[string]string{}
	for d := range dirs {
		for f := range per {
			keys[fmt.Sprintf("tree/d%03d/part-%05d.csv", d, f)] = "x"
		}
	}
	return keys
}

// heapInUse is the live heap after collecting garbage.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The cost of a cached name, measured from the heap: listed directories
// (the usual case: find, ls -lR) and per-name records (names looked up in
// directories that are not cached), each within 300 bytes and within what
// the byte accounting counts for them.
func TestPerEntryCost(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 100,000 entries")
	}
	const dirs, per = 100, 1000
	f := newFixture(t, Config{}, treeKeys(dirs, per))
	ctx := context.Background()
	// The store's own pages are made before the first measurement.
	for d := range dirs {
		f.mem.List(ctx, store.ListInput{Bucket: "b", Prefix: fmt.Sprintf("tree/d%03d/", d), Delimiter: "/"})
	}
	before := heapInUse()
	for d := range dirs {
		readAll(t, f.c, "b", fmt.Sprintf("tree/d%03d/", d))
	}
	after := heapInUse()
	st := f.c.MetadataStats()
	n := float64(dirs * per)
	measured := float64(after-before) / n
	counted := float64(st.Bytes) / n
	t.Logf("listings: %.0f bytes per entry measured, %.0f counted (%d listings, %d items)", measured, counted, st.Listings, st.Items)
	if st.Listings != dirs {
		t.Fatalf("%d listings cached, want %d", st.Listings, dirs)
	}
	if measured > 300 {
		t.Errorf("a listed name costs %.0f bytes, want at most 300", measured)
	}
	if counted < measured*0.9 {
		t.Errorf("accounting counts %.0f bytes per listed name, %.0f measured: the bound would not hold", counted, measured)
	}

	// Per-name records: a HEAD's answer for names whose directory is not cached.
	g := newFixture(t, Config{}, nil)
	objs := make([]store.Object, 50_000)
	for i := range objs {
		objs[i] = store.Object{Key: fmt.Sprintf("tree/d%03d/part-%05d.csv", i/1000, i%1000), Size: int64(i),
			ModTime: time.Unix(1_700_000_000, 0), ETag: fmt.Sprintf("%032x", i)}
	}
	before = heapInUse()
	for _, o := range objs {
		g.c.meta.putObj("b", o.Key, o, true, false)
	}
	after = heapInUse()
	runtime.KeepAlive(objs)
	st = g.c.MetadataStats()
	measured = float64(after-before) / float64(len(objs))
	counted = float64(st.Bytes) / float64(len(objs))
	t.Logf("records: %.0f bytes per name measured, %.0f counted", measured, counted)
	if measured > 300 {
		t.Errorf("a per-name record costs %.0f bytes, want at most 300", measured)
	}
	if counted < measured*0.9 {
		t.Errorf("accounting counts %.0f bytes per record, %.0f measured", counted, measured)
	}
	runtime.KeepAlive(f)
	runtime.KeepAlive(g)
}

// A walk of more directories than the bound holds: every directory is
// listed once and read correctly, older listings are evicted as the walk
// goes on, the bound holds throughout, and a directory evicted is listed
// again only when it is read again.
func TestWalkLargerThanBound(t *testing.T) {
	const dirs, per = 40, 300
	keys := treeKeys(dirs, per)
	// Room for about 8 listings of 300 entries.
	f := newFixture(t, Config{MetadataBytes: 8 * 300 * (lentBytes + 16)}, keys)
	ctx := context.Background()
	lists := func() int64 { return f.fault.Count(faultstore.OpList) }
	var mu sync.Mutex
	var order []string
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpList {
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
		}
		return nil
	})
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("listed: %q", order)
			mu.Unlock()
		}
	}()
	top := readAll(t, f.c, "b", "tree/")
	if len(top) != dirs {
		t.Fatalf("tree/ has %d entries", len(top))
	}
	for d := range dirs {
		p := fmt.Sprintf("tree/d%03d/", d)
		es := readAll(t, f.c, "b", p)
		if len(es) != per {
			t.Fatalf("%s: %d entries, want %d", p, len(es), per)
		}
		for i, e := range es {
			if want := fmt.Sprintf("part-%05d.csv", i); e.Name != want || e.Kind != KindFile || e.Object.Key != p+want || e.Object.Size != 1 {
				t.Fatalf("%s entry %d = %+v, want %s", p, i, e, want)
			}
		}
		if st := f.c.MetadataStats(); st.Bytes > st.Limit {
			t.Fatalf("after %s: %d bytes over the bound %d", p, st.Bytes, st.Limit)
		}
	}
	waitWalks(t, f.c)
	// Each directory once, and the top: no listing fetched twice, whatever
	// the read-ahead did.
	if got := lists(); got != dirs+1 {
		t.Errorf("LIST calls for the walk = %d, want %d (each directory once)", got, dirs+1)
	}
	st := f.c.MetadataStats()
	if st.Evictions == 0 || st.Listings >= dirs {
		t.Errorf("stats = %+v: the walk should have evicted listings", st)
	}
	// The first directory was evicted: reading it lists it again, once.
	before := lists()
	readAll(t, f.c, "b", "tree/d000/")
	readAll(t, f.c, "b", "tree/d000/")
	if got := lists() - before; got != 1 {
		t.Errorf("reading an evicted directory twice sent %d LISTs, want 1", got)
	}
	// Lookups still answer, from a listing or from the server.
	if n, err := f.c.Lookup(ctx, "b", "tree/d005/part-00007.csv"); err != nil || n.Kind != KindFile {
		t.Errorf("Lookup after eviction = %+v, %v", n, err)
	}
}

// waitWalks waits for the background listings of c to end.
func waitWalks(t *testing.T, c *Cache) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c.meta.walks.mu.Lock()
		n := len(c.meta.walks.calls)
		c.meta.walks.mu.Unlock()
		if n == 0 {
			return
		}
	}
	t.Fatal("background listings did not end")
}

// A directory being read completes correctly when its cached listing is
// evicted under it, and when the names of a directory being listed page by
// page are evicted before it completes.
func TestReaderSurvivesEviction(t *testing.T) {
	keys := treeKeys(3, 50)
	t.Run("cached listing evicted", func(t *testing.T) {
		f := newFixture(t, Config{}, keys)
		ctx := context.Background()
		readAll(t, f.c, "b", "tree/d000/") // cached
		r, _ := f.c.ReadDir(context.Background(), "b", "tree/d000/")
		var got []string
		for i := 0; ; i++ {
			if i == 10 {
				f.c.Forget("b", "tree/d000/part-00003.csv") // drops the listing
				f.c.meta.lru.removeIf(func(string) bool { return true })
			}
			e, ok, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, e.Object.Key)
		}
		if len(got) != 50 || got[49] != "tree/d000/part-00049.csv" {
			t.Errorf("read %d entries, last %q", len(got), got[len(got)-1])
		}
	})
	t.Run("records evicted while paging", func(t *testing.T) {
		// A bound too small for the listing: its names are recorded one
		// by one and evicted while the reader pages on.
		f := newFixture(t, Config{ListPageSize: 7, MetadataBytes: 20 * itemBytes}, keys)
		ctx := context.Background()
		for round := range 2 {
			r, _ := f.c.ReadDir(context.Background(), "b", "tree/d001/")
			n := 0
			for {
				e, ok, err := r.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if want := fmt.Sprintf("part-%05d.csv", n); e.Name != want {
					t.Fatalf("round %d entry %d = %q, want %q", round, n, e.Name, want)
				}
				n++
				f.c.meta.lru.removeIf(func(k string) bool { return k[0] == keyName })
			}
			if n != 50 {
				t.Fatalf("round %d: %d entries, want 50", round, n)
			}
			if st := f.c.MetadataStats(); st.Bytes > st.Limit || st.Listings != 0 {
				t.Errorf("stats = %+v: within the bound, no listing", st)
			}
		}
		if got := f.fault.Count(faultstore.OpList); got != 2*8 { // 50 names in pages of 7, twice
			t.Errorf("LIST calls = %d, want 16", got)
		}
	})
}

// A directory listed in several pages: while it is read its names answer
// lookups one by one, and once complete the listing answers for them and
// the records are gone (a name is not cached twice).
func TestRecordsGiveWayToListing(t *testing.T) {
	f := newFixture(t, Config{ListPageSize: 10}, treeKeys(1, 35))
	ctx := context.Background()
	r, _ := f.c.ReadDir(context.Background(), "b", "tree/d000/")
	for range 12 { // past the first page
		if _, _, err := r.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lists := f.fault.Count(faultstore.OpList)
	if n, err := f.c.Lookup(ctx, "b", "tree/d000/part-00003.csv"); err != nil || n.Kind != KindFile {
		t.Fatalf("Lookup during the listing = %+v, %v", n, err)
	}
	if f.fault.Count(faultstore.OpStat) != 0 || f.fault.Count(faultstore.OpList) != lists {
		t.Error("a name of a page already read cost a request")
	}
	for {
		_, ok, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	if st := f.c.MetadataStats(); st.Listings != 1 || st.Items != 1 {
		t.Errorf("after the listing: %+v, want the listing alone", st)
	}
	if o, err := f.c.statFile(ctx, "b", "tree/d000/part-00034.csv"); err != nil || o.Size != 1 {
		t.Errorf("StatFile from the listing = %+v, %v", o, err)
	}
	if f.fault.Count(faultstore.OpStat) != 0 {
		t.Error("StatFile of a listed name sent a HEAD")
	}
}

// The metadata cache starts no goroutine of its own: a cache used and
// dropped leaves the goroutine count where it was.
func TestNoBackgroundGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newFixture(t, Config{}, treeKeys(2, 3))
			readAll(t, f.c, "b", "tree/d000/")
			f.c.Lookup(context.Background(), "b", "tree/d001/part-00001.csv")
		}()
	}
	wg.Wait()
	var after int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after <= before {
			return
		}
	}
	t.Errorf("goroutines: %d before, %d after 20 caches were used and dropped", before, after)
}

// Directories too large to cache whole under the bound: nothing is listed
// ahead in the background (it could not be kept), so each directory is
// listed once, by the walker.
func TestNoReadAheadOfUncacheableListings(t *testing.T) {
	// A quarter of the bound is less than one directory's listing, while
	// the bound holds one directory's names as records and the top listing.
	const dirs, per = 12, 150
	f := newFixture(t, Config{MetadataBytes: 34_000}, treeKeys(dirs, per))
	readAll(t, f.c, "b", "tree/")
	for d := range dirs {
		if es := readAll(t, f.c, "b", fmt.Sprintf("tree/d%03d/", d)); len(es) != per {
			t.Fatalf("d%03d: %d entries", d, len(es))
		}
	}
	waitWalks(t, f.c)
	if st := f.c.MetadataStats(); st.Bytes > st.Limit {
		t.Errorf("stats = %+v: over the bound", st)
	}
	if got := f.fault.Count(faultstore.OpList); got != dirs+1 {
		t.Errorf("LIST calls = %d, want %d (each directory once)", got, dirs+1)
	}
}

// Names looked up in a directory whose listing expired (ls -l of names a
// directory read passed without attributes, after a long walk): the
// directory is listed again once, not a HEAD and a LIST per name.
func TestExpiredListingRelistedOnce(t *testing.T) {
	f := newFixture(t, Config{ListPageSize: 10, MetadataTTL: time.Minute}, treeKeys(1, 25))
	ctx := context.Background()
	readAll(t, f.c, "b", "tree/d000/")
	f.clock.Advance(2 * time.Minute)
	before := f.counts()
	var wg sync.WaitGroup
	for i := range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := f.c.Lookup(ctx, "b", fmt.Sprintf("tree/d000/part-%05d.csv", i))
			if err != nil || n.Kind != KindFile || n.Object.Size != 1 {
				t.Errorf("Lookup %d = %+v, %v", i, n, err)
			}
		}()
	}
	wg.Wait()
	if _, err := f.c.statFile(ctx, "b", "tree/d000/nope"); err == nil {
		t.Error("StatFile of a name not in the new listing succeeded")
	}
	after := f.counts()
	if after["Stat"] != before["Stat"] || after["List"]-before["List"] != 3 {
		t.Errorf("requests %v then %v; want one listing again (3 pages) and no HEAD", before, after)
	}
}

// A slow walker (20 s per directory, listings trusted 60 s): listings are
// read ahead no further than it reaches before they expire, so none is
// fetched twice.
func TestReadAheadWithinTTL(t *testing.T) {
	const dirs = 12
	f := newFixture(t, Config{MetadataTTL: time.Minute}, treeKeys(dirs, 5))
	var mu sync.Mutex
	lists := map[string]int{}
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpList {
			mu.Lock()
			lists[key]++
			mu.Unlock()
		}
		return nil
	})
	for d := range dirs {
		if d > 0 {
			f.clock.Advance(20 * time.Second)
		}
		readAll(t, f.c, "b", "tree/") // the walker's parent, listed again when it expires
		waitWalks(t, f.c)
		readAll(t, f.c, "b", fmt.Sprintf("tree/d%03d/", d))
	}
	waitWalks(t, f.c)
	mu.Lock()
	defer mu.Unlock()
	for d := range dirs {
		if p := fmt.Sprintf("tree/d%03d/", d); lists[p] != 1 {
			t.Errorf("%s listed %d times, want once", p, lists[p])
		}
	}
}
