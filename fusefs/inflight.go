package fusefs

import (
	"context"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// track records one FUSE request in flight with the mount's watchdog
// (Config.Tracker): what it is, on which path, for which process. Every
// node and handle method defers it first thing, with guard:
//
//	defer n.fs.track(ctx, "read", bucket, key)()
//
// It costs a map insert and delete; the watchdog reports requests that
// stay in flight for too long.
func (f *FS) track(ctx context.Context, op, bucket, key string) func() {
	t := f.cfg.Tracker
	if t == nil {
		return func() {}
	}
	var uid, pid uint32
	if c, ok := fuse.FromContext(ctx); ok {
		uid, pid = c.Uid, c.Pid
	}
	path := bucket
	if key != "" {
		path += "/" + key
	}
	o := t.Begin(op, path, uid, pid)
	return func() { t.End(o) }
}
