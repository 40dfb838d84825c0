package forget

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// Each step uses or drops names; a pass then evicts what is past the limit,
// least recently used first, passing over busy names.
func TestEvict(t *testing.T) {
	busy := map[string]bool{}
	steps := []struct {
		name string
		do   func(l *LRU[string])
		want []string // evicted by the pass after the step
		held int
	}{
		{"within the limit", func(l *LRU[string]) { l.Use("a"); l.Use("b"); l.Use("c") }, nil, 3},
		{"one past: the oldest goes", func(l *LRU[string]) { l.Use("d") }, []string{"a"}, 3},
		{"a use makes a name recent", func(l *LRU[string]) { l.Use("b"); l.Use("e") }, []string{"c"}, 3},
		{"a busy name is passed over", func(l *LRU[string]) { busy["d"] = true; l.Use("f") }, []string{"b"}, 3},
		{"forgotten by the kernel: no eviction", func(l *LRU[string]) { l.Drop("e"); l.Use("g") }, nil, 3},
		{"dropping an unknown name changes nothing", func(l *LRU[string]) { l.Drop("zz") }, nil, 3},
		{"all busy: nothing goes", func(l *LRU[string]) {
			busy["f"], busy["g"], busy["h"] = true, true, true
			l.Use("h")
		}, nil, 4},
		{"no longer busy: the least recent goes", func(l *LRU[string]) { busy["f"] = false; l.Use("g") }, []string{"f"}, 3},
	}
	l := New(3, func(s string) bool { return busy[s] })
	var asked int64
	for _, s := range steps {
		s.do(l)
		got := l.evict(batch)
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: evicted %q, want %q", s.name, got, s.want)
		}
		asked += int64(len(s.want))
		if held, a := l.Stats(); held != s.held || a != asked {
			t.Errorf("%s: held %d asked %d, want %d and %d", s.name, held, a, s.held, asked)
		}
	}
}

// A pass takes at most n names, so Run notifies in batches.
func TestEvictBatch(t *testing.T) {
	l := New[int](2, nil)
	for i := range 10 {
		l.Use(i)
	}
	if got := l.evict(3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("first batch %v", got)
	}
	if got := l.evict(100); !slices.Equal(got, []int{3, 4, 5, 6, 7}) {
		t.Errorf("second batch %v", got)
	}
}

// Run notifies every name past the limit, oldest first, holding no lock
// (notify may call back into the LRU), and stops when ctx ends.
func TestRun(t *testing.T) {
	l := New[int](5, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, func(i int) {
			l.Drop(i) // as the kernel's FORGET would, from another request
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
		})
	}()
	for i := range 1000 {
		l.Use(i)
	}
	// Wait for the notifications, not for the LRU's count: a batch leaves
	// the LRU before its names are notified one by one, and a cancel in
	// between stops the rest of the batch.
	notified := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	deadline := time.Now().Add(10 * time.Second)
	for notified() < 995 {
		if time.Now().After(deadline) {
			held, _ := l.Stats()
			t.Fatalf("Run notified %d names in 10 s, holding %d; want 995 and 5", notified(), held)
		}
		time.Sleep(time.Millisecond)
	}
	if held, asked := l.Stats(); held != 5 || asked != 995 {
		t.Errorf("the LRU holds %d names, asked for %d; want 5 and 995", held, asked)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 995 || !slices.IsSorted(got) {
		t.Errorf("notified %d names (sorted %v), want 995 oldest first", len(got), slices.IsSorted(got))
	}
}

// What the LRU adds per name the kernel holds, beside go-fuse's node and
// ours (~450 bytes): measured from the heap, for the docs.
func TestPerNameCost(t *testing.T) {
	const n = 100_000
	nodes := make([]*[64]byte, n) // stand-ins for the nodes, made before measuring
	for i := range nodes {
		nodes[i] = new([64]byte)
	}
	l := New[*[64]byte](n, nil)
	before := heapInUse()
	for _, p := range nodes {
		l.Use(p)
	}
	per := float64(heapInUse()-before) / n
	t.Logf("%.0f bytes per name held", per)
	if per > 150 {
		t.Errorf("the LRU costs %.0f bytes per name, want at most 150", per)
	}
	runtime.KeepAlive(l)
}

// heapInUse is the live heap after two collections.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
