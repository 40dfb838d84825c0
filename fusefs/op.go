package fusefs

import (
	"context"
	"fmt"
	"runtime/debug"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// op begins one request; methods defer what it returns, first thing:
//
//	defer n.fs.op(ctx, "read", bucket, key, &errno)()
//
// It records the request with the watchdog (Config.Tracker) while in
// flight, and turns a panic into EIO for that request, logged with the
// bucket and key (go-fuse's own recover logs to stderr, /dev/null for a
// daemon) and with the stack the first time each operation panics.
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
