package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store/faultstore"
)

// The in-flight budget's acquire waits for room, and gives up when its
// context ends instead of waiting for ever.
func TestBudgetAcquireBounded(t *testing.T) {
	tests := []struct {
		name    string
		held    int64 // taken before
		n       int64
		demand  bool
		release int64 // released 10ms later
		wantErr error
	}{
		{"room at once", 0, 40, true, 0, nil},
		{"demand may use the reserve", 70, 30, true, 0, nil},
		{"read-ahead leaves the reserve", 70, 30, false, 0, context.DeadlineExceeded},
		{"waits for a release", 100, 50, true, 50, nil},
		{"full and nothing released", 100, 1, true, 0, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(100)
			if err := b.acquire(context.Background(), tt.held, true); err != nil {
				t.Fatal(err)
			}
			if tt.release > 0 {
				time.AfterFunc(10*time.Millisecond, func() { b.release(tt.release) })
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := b.acquire(ctx, tt.n, tt.demand)
			if !errors.Is(err, tt.wantErr) && err != tt.wantErr {
				t.Fatalf("acquire = %v, want %v", err, tt.wantErr)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("acquire took %v", took)
			}
			b.mu.Lock()
			avail := b.avail
			b.mu.Unlock()
			want := 100 - tt.held + tt.release
			if err == nil {
				want -= tt.n
			}
			if avail != want {
				t.Errorf("avail = %d, want %d (a failed acquire takes nothing)", avail, want)
			}
		})
	}
}

// A fetch that cannot get room in the budget within the request timeout
// fails its readers instead of holding them for ever.
func TestFetchGivesUpWithoutRoom(t *testing.T) {
	f, _, o := newDataFixture(t, Config{RequestTimeout: 100 * time.Millisecond}, testBlock)
	b := f.c.data.budget
	if err := b.acquire(context.Background(), b.total, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := f.c.Open("b", o).ReadAt(context.Background(), make([]byte, 10), 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("read took %v", took)
	}
	if n := f.fault.Count(faultstore.OpReadAt); n != 0 {
		t.Errorf("GETs = %d, want 0", n)
	}
}

// Close ends the cache's background work: a fetch blocked in the store
// returns, and a reader waiting for it gets an error.
func TestCloseStopsFetches(t *testing.T) {
	f, _, o := newDataFixture(t, Config{}, testBlock)
	var ended atomic.Bool
	f.fault.SetHook(func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpReadAt {
			<-ctx.Done()
			ended.Store(true)
			return ctx.Err()
		}
		return nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := f.c.Open("b", o).ReadAt(context.Background(), make([]byte, 10), 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	f.c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader still blocked 5s after Close")
	}
	if !ended.Load() {
		t.Error("the GET did not see its context end")
	}
}

// Retry back-off sleeps end with the context.
func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if sleep(ctx, time.Hour) {
		t.Fatal("sleep of an hour on a cancelled context reported it passed")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("sleep took %v", took)
	}
	if !sleep(context.Background(), time.Millisecond) {
		t.Error("a short sleep did not pass")
	}
}
