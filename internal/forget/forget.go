// Package forget keeps the file inodes the kernel holds within a bound: an
// LRU of the names the kernel was given, and one goroutine that asks the
// kernel to forget the least recently used past the bound; Plus decides
// when directory reads give files' attributes, each an inode more.
//
// The kernel keeps every inode it was given until it forgets it, which it
// does only under memory pressure; each costs the daemon a node (~450
// bytes with go-fuse's). The asking goroutine holds no lock while it asks:
// the kernel takes a directory's lock to drop a name, and a request in
// flight may hold that lock while it waits for the daemon (issue #11).
package forget

import (
	"container/list"
	"context"
	"sync"
)

// batch is how many names one pass of Run takes out of the LRU.
const batch = 256

// LRU orders the names the kernel holds, most recently given first.
// Its methods are safe for concurrent use and never block on the kernel.
type LRU[T comparable] struct {
	limit int
	busy  func(T) bool

	mu    sync.Mutex
	order *list.List // of T, front most recently used
	at    map[T]*list.Element
	asked int64 // names handed to Run's notify

	wake chan struct{} // cap 1: a pass is due (coalesced)
}

// New returns an LRU of at most limit names (at least 1). busy says a
// name must stay known to the kernel for now (a file open or being
// written): it is passed over and counts as used; it must not block.
func New[T comparable](limit int, busy func(T) bool) *LRU[T] {
	if busy == nil {
		busy = func(T) bool { return false }
	}
	return &LRU[T]{limit: max(limit, 1), busy: busy, order: list.New(), at: map[T]*list.Element{}, wake: make(chan struct{}, 1)}
}

// Use records that the kernel was given t (again) now.
func (l *LRU[T]) Use(t T) {
	l.mu.Lock()
	if e, ok := l.at[t]; ok {
		l.order.MoveToFront(e)
	} else {
		l.at[t] = l.order.PushFront(t)
	}
	over := l.order.Len() > l.limit
	l.mu.Unlock()
	if over {
		select {
		case l.wake <- struct{}{}:
		default: // a pass is due already
		}
	}
}

// Drop forgets t: the kernel forgot it.
func (l *LRU[T]) Drop(t T) {
	l.mu.Lock()
	if e, ok := l.at[t]; ok {
		l.order.Remove(e)
		delete(l.at, t)
	}
	l.mu.Unlock()
}

// Stats says how many names the LRU holds and how many it handed out to
// be forgotten so far.
func (l *LRU[T]) Stats() (held int, asked int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len(), l.asked
}

// evict takes out up to n of the least recently used names while the LRU
// holds more than its limit. Busy names it meets go to the front; it looks
// at no more names than it holds.
func (l *LRU[T]) evict(n int) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []T
	for seen := l.order.Len(); seen > 0 && len(out) < n && l.order.Len() > l.limit; seen-- {
		e := l.order.Back()
		t := e.Value.(T)
		if l.busy(t) {
			l.order.MoveToFront(e)
			continue
		}
		l.order.Remove(e)
		delete(l.at, t)
		out = append(out, t)
	}
	l.asked += int64(len(out))
	return out
}

// Run asks the kernel, through notify, to forget what goes past the
// limit, until ctx ends. notify is called with no lock held, one name at a
// time, in batches of least recently used names. Run one per LRU.
func (l *LRU[T]) Run(ctx context.Context, notify func(T)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		for {
			ts := l.evict(batch)
			if len(ts) == 0 {
				break
			}
			for _, t := range ts {
				if ctx.Err() != nil {
					return
				}
				notify(t)
			}
		}
	}
}
