package fusefs

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/internal/watchdog"
)

// op begins one request; methods defer what it returns, first thing:
//
//	defer n.fs.op(ctx, "read", bucket, key, &errno)()
//
// It records the request with the watchdog (Config.Tracker) while in
// flight, and turns a panic into EIO for that request, logged with the
// bucket and key (go-fuse's own recover logs to stderr, /dev/null for a
// daemon) and with the stack the first time each operation panics. It
// allocates nothing (opState).
func (f *FS) op(ctx context.Context, op, bucket, key string, errno *syscall.Errno) func() {
	return f.opIn(ctx, op, bucket, key, "", errno)
}

// opIn is op for name in the directory key ("" or ending in "/"): the path
// is joined only if a report needs it.
func (f *FS) opIn(ctx context.Context, op, bucket, dir, name string, errno *syscall.Errno) func() {
	s := opStates.Get().(*opState)
	s.f, s.name, s.parts, s.errno, s.o = f, op, [3]string{bucket, dir, name}, errno, nil
	if t := f.cfg.Tracker; t != nil {
		var uid, pid uint32
		if c, ok := fuse.FromContext(ctx); ok {
			uid, pid = c.Uid, c.Pid
		}
		s.o = t.BeginParts(op, s.parts, uid, pid)
	}
	return s.end
}

// opState is one request's op, reused: its end is made once, as a method
// value, so that op returns a func without allocating one per request.
type opState struct {
	f     *FS
	name  string
	parts [3]string
	errno *syscall.Errno
	o     *watchdog.Op
	end   func()
}

var opStates sync.Pool

func init() {
	opStates.New = func() any {
		s := &opState{}
		s.end = s.done
		return s
	}
}

func (s *opState) done() {
	defer s.release()
	r := recover()
	if r == nil {
		return
	}
	*s.errno = syscall.EIO
	f := s.f
	n := f.panics.Add(1)
	args := []any{"op", s.name, "bucket", s.parts[0], "key", s.parts[1] + s.parts[2], "panic", fmt.Sprint(r), "panics", n}
	if _, seen := f.panicked.LoadOrStore(s.name, true); !seen {
		args = append(args, "stack", string(debug.Stack()))
	}
	f.log.Error("panic in request (answered EIO; the mount keeps serving)", args...)
}

// release ends the request with the watchdog and puts s back.
func (s *opState) release() {
	if s.o != nil {
		s.f.cfg.Tracker.End(s.o)
	}
	*s = opState{end: s.end}
	opStates.Put(s)
}
