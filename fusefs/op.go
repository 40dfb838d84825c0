package fusefs

import (
	"context"
	"fmt"
	"runtime/debug"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// op begins one FUSE request; every node and handle method defers what it
// returns first thing:
//
//	defer n.fs.op(ctx, "read", bucket, key, &errno)()
//
// It records the request in flight with the mount's watchdog
// (Config.Tracker: what, on which path, for which process; a map insert
// and delete), which reports requests that stay in flight too long. And it
// contains a panic in the request: the panic becomes EIO for that one
// request and is logged, with the stack the first time each operation
// panics (a panic that repeats on every request would otherwise flood the
// log). go-fuse recovers too, but it logs to stderr, which a daemon sends
// to /dev/null, and it cannot name the bucket and key. (The function op
// returns is the deferred one, so its recover works.)
func (f *FS) op(ctx context.Context, op, bucket, key string, errno *syscall.Errno) func() {
	end := func() {}
	if t := f.cfg.Tracker; t != nil {
		var uid, pid uint32
		if c, ok := fuse.FromContext(ctx); ok {
			uid, pid = c.Uid, c.Pid
		}
		path := bucket
		if key != "" {
			path += "/" + key
		}
		o := t.Begin(op, path, uid, pid)
		end = func() { t.End(o) }
	}
	return func() {
		defer end()
		r := recover()
		if r == nil {
			return
		}
		*errno = syscall.EIO
		n := f.panics.Add(1)
		args := []any{"op", op, "bucket", bucket, "key", key, "panic", fmt.Sprint(r), "panics", n}
		if _, seen := f.panicked.LoadOrStore(op, true); !seen {
			args = append(args, "stack", string(debug.Stack()))
		}
		f.log.Error("panic in request (answered EIO; the mount keeps serving)", args...)
	}
}
