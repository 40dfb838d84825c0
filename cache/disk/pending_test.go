package disk

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// until polls cond for up to 10 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// TestLandGetWaits: a Get of a block being landed waits for its write and
// finds it, where it used to miss (and the memory tier then sent a GET).
func TestLandGetWaits(t *testing.T) {
	// A wait long enough for two writes on a loaded machine.
	c := open(t, Config{Dir: t.TempDir(), PutWait: time.Minute})
	ks := []Key{key("k", 0), key("k", 1)}
	release := make(chan struct{})
	landed := make(chan struct{})
	go func() {
		defer close(landed)
		c.Land(ks, func(j int, _ []byte) ([]byte, bool) {
			<-release
			return block(byte(3+j), bs), true
		})
	}()
	until(t, "blocks registered", func() bool { return c.Has(ks[1]) })
	got := make(chan []byte, 1)
	go func() {
		d, _ := c.Get(ks[1])
		got <- d
	}()
	until(t, "the Get waits", func() bool { return c.landWaits.Load() == 1 })
	close(release)
	if d := <-got; !bytes.Equal(d, block(4, bs)) {
		t.Fatalf("Get of a block being landed: %d bytes, want the block", len(d))
	}
	<-landed
	if s := c.Stats(); s.Blocks != 2 || s.Misses != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestQueuedServed: a queued block is found (Has, Get) before its file is
// written, and its bytes are let go (done) only once it is.
func TestQueuedServed(t *testing.T) {
	c := open(t, Config{Dir: t.TempDir(), Paused: true})
	k := key("k", 0)
	var released atomic.Bool
	c.Put(context.Background(), k, block(5, 100), func() { released.Store(true) })
	if !c.Has(k) {
		t.Fatal("queued block not held")
	}
	dst := make([]byte, bs)
	if d, ok := c.GetInto(context.Background(), k, dst); !ok || !bytes.Equal(d, block(5, 100)) || &d[0] != &dst[0] {
		t.Fatalf("GetInto of a queued block: ok=%v, %d bytes", ok, len(d))
	}
	c.Put(context.Background(), k, block(6, 100), nil) // the same block again: not queued twice
	if s := c.Stats(); s.Blocks != 0 || s.Hits != 1 || released.Load() {
		t.Fatalf("before the write: stats %+v, released %v", s, released.Load())
	}
	c.Resume()
	settle(t, c, 1)
	until(t, "bytes released", released.Load)
	if d, ok := c.Get(k); !ok || !bytes.Equal(d, block(5, 100)) {
		t.Fatal("block written from the queue differs")
	}
}

// TestLandGetCancelled: a Get of a block being landed gives up when its
// ctx ends, well before PutWait.
func TestLandGetCancelled(t *testing.T) {
	c := open(t, Config{Dir: t.TempDir(), PutWait: time.Minute})
	ks := []Key{key("k", 0)}
	release := make(chan struct{})
	landed := make(chan struct{})
	go func() {
		defer close(landed)
		c.Land(ks, func(int, []byte) ([]byte, bool) {
			<-release
			return block(3, bs), true
		})
	}()
	until(t, "block registered", func() bool { return c.Has(ks[0]) })
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan bool, 1)
	go func() {
		_, ok := c.GetInto(ctx, ks[0], nil)
		got <- ok
	}()
	until(t, "the Get waits", func() bool { return c.landWaits.Load() == 1 })
	cancel()
	select {
	case ok := <-got:
		if ok {
			t.Fatal("a block still being landed was served")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Get did not give up when its ctx ended")
	}
	close(release)
	<-landed
}

// TestLandsAtOnce: however many files are closed together, at most
// landAtOnce Lands hold buffers at once; the others wait, and every block
// lands.
func TestLandsAtOnce(t *testing.T) {
	c := open(t, Config{Dir: t.TempDir(), PutWait: time.Minute})
	const files = 3 * landAtOnce
	var inFill, most atomic.Int64
	release := make(chan struct{})
	done := make(chan struct{}, files)
	for f := range files {
		go func() {
			defer func() { done <- struct{}{} }()
			obj := "f" + string(rune('a'+f))
			c.Land([]Key{key(obj, 0), key(obj, 1)}, func(j int, dst []byte) ([]byte, bool) {
				n := inFill.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				inFill.Add(-1)
				return blockOf(obj, int64(j), bs), true
			})
		}()
	}
	until(t, "the first Lands fill", func() bool { return inFill.Load() == landAtOnce })
	time.Sleep(50 * time.Millisecond) // the rest, if unbounded, would be in too
	if n := most.Load(); n != landAtOnce {
		t.Fatalf("%d Lands reading at once, want %d", n, landAtOnce)
	}
	close(release)
	for range files {
		<-done
	}
	if n := most.Load(); n != landAtOnce {
		t.Fatalf("%d Lands reading at once, want at most %d", n, landAtOnce)
	}
	if s := c.Stats(); s.Blocks != 2*files {
		t.Fatalf("stats %+v, want %d blocks", s, 2*files)
	}
	for f := range files {
		obj := "f" + string(rune('a'+f))
		if d, ok := c.Get(key(obj, 1)); !ok || !bytes.Equal(d, blockOf(obj, 1, bs)) {
			t.Fatalf("%s block 1 not landed", obj)
		}
	}
}
