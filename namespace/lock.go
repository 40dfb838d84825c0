package namespace

import (
	"context"
	"sync"
)

// waitLock is a mutex whose lock gives up when ctx ends. It is for locks
// held across network calls (an upload, a fetch of the object to stage):
// a request waiting behind one can still be interrupted, which a
// sync.Mutex would not allow. Its zero value is unlocked.
type waitLock struct {
	once sync.Once
	ch   chan struct{}
}

// lock takes the lock, or returns ctx's error if ctx ends first. A free
// lock is taken even if ctx has already ended: a request the kernel marked
// interrupted (a signal to the caller, such as the Go runtime's
// preemption) still closes its file when nothing stands in its way, rather
// than failing at random where select would pick between the two.
func (l *waitLock) lock(ctx context.Context) error {
	l.once.Do(func() { l.ch = make(chan struct{}, 1) })
	select {
	case l.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *waitLock) unlock() { <-l.ch }
