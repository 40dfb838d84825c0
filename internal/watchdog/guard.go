package watchdog

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
)

// Guard begins and ends requests: each is recorded with Tracker while in
// flight, and a panic in one is recovered, logged (with the stack the
// first time each operation panics: a daemon's stderr goes nowhere) and
// answered EIO, so the mount keeps serving. Begin allocates nothing (but
// the caller's errno, whose address it keeps): a request's state is
// pooled, with its end made once as a method value.
type Guard struct {
	Tracker *Tracker // nil: requests are not tracked
	Logger  *slog.Logger

	panics   atomic.Int64
	panicked sync.Map // operations whose panic stack was logged
	states   sync.Pool
}

// Begin starts the request op on bucket/key1+key2 (parts; joined only for
// a report) for process pid of user uid. Defer what it returns, first
// thing: it ends the request, and on a panic sets *errno to EIO; then it
// calls release, if not nil (what the request held to its end).
func (g *Guard) Begin(op string, parts [3]string, uid, pid uint32, errno *syscall.Errno, release func()) func() {
	s, _ := g.states.Get().(*request)
	if s == nil {
		s = &request{}
		s.end = s.done
	}
	s.g, s.op, s.parts, s.errno, s.after = g, op, parts, errno, release
	if g.Tracker != nil {
		s.o = g.Tracker.Begin(op, parts, uid, pid)
	}
	return s.end
}

type request struct {
	g     *Guard
	op    string
	parts [3]string
	errno *syscall.Errno
	o     *Op
	after func() // Begin's release
	end   func()
}

func (s *request) done() {
	defer s.release()
	r := recover()
	if r == nil {
		return
	}
	*s.errno = syscall.EIO
	g := s.g
	args := []any{"op", s.op, "bucket", s.parts[0], "key", s.parts[1] + s.parts[2], "panic", fmt.Sprint(r), "panics", g.panics.Add(1)}
	if _, seen := g.panicked.LoadOrStore(s.op, true); !seen {
		args = append(args, "stack", string(debug.Stack()))
	}
	if g.Logger != nil {
		g.Logger.Error("panic in request (answered EIO; the mount keeps serving)", args...)
	}
}

// release ends the request with the tracker and puts s back.
func (s *request) release() {
	g := s.g
	if s.after != nil {
		s.after()
	}
	if s.o != nil {
		g.Tracker.End(s.o)
	}
	*s = request{end: s.end}
	g.states.Put(s)
}
