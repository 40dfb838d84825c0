package watchdog

import (
	"bytes"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGuard: a request is tracked while in flight; a panic is answered EIO
// and logged, with the stack the first time its operation panics; a
// request costs no allocation but its errno's.
func TestGuard(t *testing.T) {
	var log bytes.Buffer
	g := &Guard{Tracker: New(Config{StuckAfter: time.Minute}), Logger: slog.New(slog.NewTextHandler(&log, nil))}
	released := 0
	release := func() { released++ }
	serve := func(op string, panics bool) (errno syscall.Errno, inFlight int) {
		defer g.Begin(op, [3]string{"bkt", "dir/", "f.csv"}, 1000, 42, &errno, release)()
		inFlight = g.Tracker.InFlight()
		if panics {
			panic("injected")
		}
		return 0, inFlight
	}
	tests := []struct {
		op     string
		panics bool
		errno  syscall.Errno
		stack  bool // logged with a stack
	}{
		{"lookup", false, 0, false},
		{"read", true, syscall.EIO, true},
		{"read", true, syscall.EIO, false}, // the second panic of read: no stack
		{"readdir", true, syscall.EIO, true},
	}
	for i, tt := range tests {
		log.Reset()
		released = 0
		errno, inFlight := serve(tt.op, tt.panics)
		if released != 1 {
			t.Errorf("%d %s: release called %d times, want once", i, tt.op, released)
		}
		if errno != tt.errno {
			t.Errorf("%d %s: errno %v, want %v", i, tt.op, errno, tt.errno)
		}
		if !tt.panics && inFlight != 1 {
			t.Errorf("%d %s: %d requests in flight during it, want 1", i, tt.op, inFlight)
		}
		if n := g.Tracker.InFlight(); n != 0 {
			t.Errorf("%d %s: %d in flight after it", i, tt.op, n)
		}
		logged := log.String()
		if tt.panics != strings.Contains(logged, "panic in request") || tt.panics && !strings.Contains(logged, "key=dir/f.csv") {
			t.Errorf("%d %s: log %q", i, tt.op, logged)
		}
		if got := strings.Contains(logged, "stack="); got != tt.stack {
			t.Errorf("%d %s: stack logged %v, want %v", i, tt.op, got, tt.stack)
		}
	}
	// One allocation at most: the request's errno result, whose address
	// the guard keeps to answer a panic, moves to the heap.
	if n := testing.AllocsPerRun(100, func() { serve("getattr", false) }); n > 1 {
		t.Errorf("a request allocates %v times, want at most 1 (its errno)", n)
	}
}
