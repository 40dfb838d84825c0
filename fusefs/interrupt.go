package fusefs

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Interrupts. The kernel tells the daemon (FUSE_INTERRUPT, which go-fuse
// turns into the end of the request's context) whenever the process
// waiting on a request takes a signal: one that kills it, and also one it
// catches and carries on after: SIGCHLD, a timer's SIGALRM (git's
// progress), R's Ctrl-C handler, the Go runtime's preemption (SIGURG).
// Ending every interrupted request with EINTR fails calls that would have
// succeeded a moment later: a Go program's open or unlink, which it
// repeats and is interrupted again, or a close whose upload was done. As
// NFS has since Linux 2.6.25, a request gives up at once only when its
// caller is dying (a fatal signal pending, or gone); after a signal the
// caller catches, it goes on, and gives up with EINTR only if it still
// waits interruptGrace later, so that a caught Ctrl-C still ends a wait on
// a network that does not answer.
const (
	interruptGrace = 2 * time.Second
	// interruptPoll is how often an interrupted request looks whether
	// its caller is dying: the kernel sends one interrupt per request,
	// so a kill after a caught signal is seen only so.
	interruptPoll = 50 * time.Millisecond
)

// work returns the context a request's work runs under: ctx's values (the
// caller), ended as above when ctx (go-fuse's) ends, for the caller pid
// (the thread that made the request), and at the latest by release, when
// the request ends.
func work(ctx context.Context, pid uint32) (_ context.Context, release func()) {
	c := &workCtx{parent: ctx, pid: pid}
	return c, c.release
}

// workCtx is made only when first asked for its Done channel, its Err or
// an AfterFunc: most requests (a cached attribute, the next name of a
// listing) never wait, and then cost no watcher. It is an AfterFunc-er,
// so the contexts derived from it cost no goroutine either.
type workCtx struct {
	parent context.Context
	pid    uint32

	mu       sync.Mutex
	w        context.Context // nil until asked for
	cancel   context.CancelFunc
	stop     func() bool // the watch of parent
	released bool
}

var _ interface{ AfterFunc(func()) func() bool } = (*workCtx)(nil)

func (c *workCtx) work() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		c.w, c.cancel = context.WithCancel(context.WithoutCancel(c.parent))
		switch {
		case c.released:
			c.cancel()
		case c.parent.Done() != nil:
			w, cancel, pid := c.w, c.cancel, c.pid
			c.stop = context.AfterFunc(c.parent, func() { interrupted(w, cancel, pid) })
		}
	}
	return c.w
}

func (c *workCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	if c.w == nil {
		return
	}
	if c.stop != nil {
		c.stop()
	}
	c.cancel()
}

func (c *workCtx) Deadline() (time.Time, bool)           { return time.Time{}, false }
func (c *workCtx) Done() <-chan struct{}                 { return c.work().Done() }
func (c *workCtx) Err() error                            { return c.work().Err() }
func (c *workCtx) Value(key any) any                     { return c.parent.Value(key) }
func (c *workCtx) AfterFunc(f func()) (stop func() bool) { return context.AfterFunc(c.work(), f) }

// interrupted runs once the caller pid of the request w was interrupted:
// it ends w when the caller is dying, or interruptGrace later, or returns
// when the request ends by itself.
func interrupted(w context.Context, cancel context.CancelFunc, pid uint32) {
	grace := time.NewTimer(interruptGrace)
	defer grace.Stop()
	poll := time.NewTicker(interruptPoll)
	defer poll.Stop()
	for !dying(pid) {
		select {
		case <-w.Done():
			return
		case <-grace.C:
			cancel()
			return
		case <-poll.C:
		}
	}
	cancel()
}

// dying reports whether the process (or thread) pid is being killed: a
// SIGKILL pending, which the kernel queues on every thread of a process
// a fatal signal ends, or no such process any more. A caller that cannot
// be seen (pid 0, a caller in another PID namespace; /proc hidden or
// unreadable) counts as dying: its interrupt ends the request at once, as
// every interrupt did before.
func dying(pid uint32) bool {
	if pid == 0 {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return true
	}
	return killPending(b)
}

// sigkill is SIGKILL's bit in a /proc status signal mask.
const sigkill = 1 << (9 - 1)

// killPending reports whether a /proc/PID/status text shows SIGKILL
// pending, for the thread (SigPnd) or its process (ShdPnd). A text it
// cannot read says yes.
func killPending(status []byte) bool {
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "SigPnd" && name != "ShdPnd") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(val), 16, 64)
		if err != nil || mask&sigkill != 0 {
			return true
		}
		seen++
	}
	return seen < 2
}
