package namespace

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWaitLock: a free lock is taken even on an ended ctx; a held one is
// waited for until it is let go, or until ctx ends.
func TestWaitLock(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	var l waitLock
	for i := range 200 {
		if err := l.lock(ended); err != nil {
			t.Fatalf("try %d: a free lock refused to an interrupted request: %v", i, err)
		}
		l.unlock()
	}

	if err := l.lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.lock(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("held lock, ended ctx: %v, want context.Canceled", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held lock, ctx ending while waiting: %v, want context.DeadlineExceeded", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.lock(context.Background()) }()
	select {
	case err := <-got:
		t.Fatalf("lock taken while held: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	l.unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiter after unlock: %v", err)
	}
	l.unlock()
}
