package faultstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/memstore"
)

func newStore(t *testing.T) (*Store, *memstore.Store) {
	t.Helper()
	m := memstore.New()
	if err := m.CreateBucket(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(t.Context(), "b", "k", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	return New(m), m
}

// calls exercises every operation once, keyed by its op name.
func calls(s *Store) map[string]func(ctx context.Context) error {
	return map[string]func(ctx context.Context) error{
		OpListBuckets: func(ctx context.Context) error { _, err := s.ListBuckets(ctx); return err },
		OpList: func(ctx context.Context) error {
			_, err := s.List(ctx, store.ListInput{Bucket: "b", Prefix: "k"})
			return err
		},
		OpStat: func(ctx context.Context) error { _, err := s.Stat(ctx, "b", "k"); return err },
		OpReadAt: func(ctx context.Context) error {
			_, err := store.ReadAt(ctx, s, "b", "k", "", make([]byte, 5), 0)
			return err
		},
	}
}

func TestCountAndPassThrough(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	for op, call := range calls(s) {
		for i := 0; i < 3; i++ {
			if err := call(ctx); err != nil {
				t.Fatalf("%s: %v", op, err)
			}
		}
	}
	for op := range calls(s) {
		if got := s.Count(op); got != 3 {
			t.Errorf("Count(%s) = %d, want 3", op, got)
		}
	}
	p := make([]byte, 5)
	if n, err := store.ReadAt(ctx, s, "b", "k", "", p, 0); n != 5 || err != nil || string(p) != "hello" {
		t.Errorf("ReadAt = %d, %v, %q", n, err, p)
	}
	if s.Count("Bogus") != 0 {
		t.Error("unknown op counted")
	}
	s.Reset()
	for op := range calls(s) {
		if got := s.Count(op); got != 0 {
			t.Errorf("after Reset Count(%s) = %d", op, got)
		}
	}
}

func TestHook(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	injected := errors.New("injected")
	type seen struct{ op, bucket, key string }
	var mu sync.Mutex
	var got []seen
	s.SetHook(func(ctx context.Context, op, bucket, key string) error {
		mu.Lock()
		got = append(got, seen{op, bucket, key})
		mu.Unlock()
		if op == OpStat {
			return injected
		}
		return nil
	})
	want := map[string]seen{
		OpListBuckets: {OpListBuckets, "", ""},
		OpList:        {OpList, "b", "k"},
		OpStat:        {OpStat, "b", "k"},
		OpReadAt:      {OpReadAt, "b", "k"},
	}
	for op, call := range calls(s) {
		got = nil
		err := call(ctx)
		if op == OpStat {
			if !errors.Is(err, injected) {
				t.Errorf("Stat = %v, want the injected error", err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", op, err)
		}
		if len(got) != 1 || got[0] != want[op] {
			t.Errorf("%s: hook saw %+v, want %+v", op, got, want[op])
		}
		if s.Count(op) != 1 {
			t.Errorf("Count(%s) = %d, want 1 (hook failures count)", op, s.Count(op))
		}
	}
	s.SetHook(nil)
	if err := calls(s)[OpStat](ctx); err != nil {
		t.Errorf("Stat after removing the hook: %v", err)
	}
}

func TestHookDelayHonoursContext(t *testing.T) {
	s, _ := newStore(t)
	s.SetHook(func(ctx context.Context, op, bucket, key string) error {
		select {
		case <-time.After(time.Minute):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Stat(ctx, "b", "k")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("Stat = %v after %v, want DeadlineExceeded promptly", err, time.Since(start))
	}
}

func TestConcurrentCounts(t *testing.T) {
	s, _ := newStore(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				_, _ = s.Stat(t.Context(), "b", "k")
				if i == 50 {
					s.SetHook(func(context.Context, string, string, string) error { return nil })
				}
			}
		}()
	}
	wg.Wait()
	if got := s.Count(OpStat); got != 800 {
		t.Errorf("Count(Stat) = %d, want 800", got)
	}
}
