package fusefs

import (
	"fmt"
	"runtime/debug"
	"syscall"
)

// guard contains a panic in one FUSE operation: deferred first thing in
// every node and handle method, it turns the panic into EIO for that one
// request and logs it, with the stack the first time each operation
// panics (a panic that repeats on every request would otherwise flood the
// log). go-fuse recovers too, but it logs to stderr, which a daemon sends
// to /dev/null, and it cannot name the bucket and key.
//
// It must be deferred directly (defer f.guard(...)): recover only works in
// the deferred function itself.
func (f *FS) guard(op, bucket, key string, errno *syscall.Errno) {
	r := recover()
	if r == nil {
		return
	}
	*errno = syscall.EIO
	n := f.panics.Add(1)
	if _, seen := f.panicked.LoadOrStore(op, true); !seen {
		f.log.Error("panic in request (answered EIO; the mount keeps serving)", "op", op, "bucket", bucket, "key", key,
			"panic", fmt.Sprint(r), "panics", n, "stack", string(debug.Stack()))
		return
	}
	f.log.Error("panic in request (answered EIO; the mount keeps serving)", "op", op, "bucket", bucket, "key", key,
		"panic", fmt.Sprint(r), "panics", n)
}
