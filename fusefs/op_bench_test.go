package fusefs

import (
	"context"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// BenchmarkOp: what beginning and ending a request costs (a request that
// never waits: its context is never made).
func BenchmarkOp(b *testing.B) {
	f := &FS{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var ctx context.Context = &fuse.Context{Caller: fuse.Caller{Pid: 1}, Cancel: make(chan struct{})}
		var errno syscall.Errno
		f.op(&ctx, "getattr", "b", "k", &errno)()
	}
}
