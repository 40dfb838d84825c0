package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// op begins one request; methods defer what it returns, first thing:
//
//	defer n.fs.op(&ctx, "read", bucket, key, &errno)()
//
// It replaces *ctx, go-fuse's, with the context the request's work runs
// under, which a signal to the caller ends only as interrupt.go says. The
// watchdog's Guard records the request (Config.Tracker) while in flight
// and turns a panic into EIO for it, logged with the bucket and key
// (go-fuse's own recover logs to stderr, /dev/null for a daemon).
func (f *FS) op(ctx *context.Context, op, bucket, key string, errno *syscall.Errno) func() {
	return f.opIn(ctx, op, bucket, key, "", errno)
}

// opIn is op for name in the directory key: the path is joined only if a
// report needs it.
func (f *FS) opIn(ctx *context.Context, op, bucket, dir, name string, errno *syscall.Errno) func() {
	var uid, pid uint32
	if c, ok := fuse.FromContext(*ctx); ok {
		uid, pid = c.Uid, c.Pid
	}
	var release func()
	*ctx, release = work(*ctx, pid)
	return f.guard.Begin(op, [3]string{bucket, dir, name}, uid, pid, errno, release)
}
