package fusefs

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/bucketfs/bucketfs/namespace"
)

// refresh forgets the path written as line to namespace.RefreshFile and what is
// below it: the namespace's caches (namespace.NS.RefreshLine), then the
// kernel's entries and attributes, so the next look asks.
func (n *controlFile) refresh(line string) error {
	f := n.fs
	segs, err := f.ns.RefreshLine(f.cfg.Bucket, f.cfg.Prefix, line)
	if err != nil {
		return err
	}
	// This runs inside a WRITE request, and a notification sent from
	// inside a request can wait on kernel locks that wait on this request
	// (the stall of #11, notify_test.go): notify from a goroutine, and
	// wait for it only a while.
	done := make(chan struct{})
	go func() {
		defer close(done)
		dir := n.Root()
		for i, s := range segs {
			if i == 0 && s == namespace.ControlDir {
				return
			}
			_ = dir.NotifyEntry(s)
			if dir = dir.GetChild(s); dir == nil {
				return
			}
		}
		forgetKernel(dir)
	}()
	t := time.NewTimer(refreshKernelWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		f.log.Debug("refresh: the kernel's caches are still being dropped", "path", line)
	}
	return nil
}

// refreshKernelWait is how long a refresh waits for the kernel to drop its
// entries before the write returns.
const refreshKernelWait = 2 * time.Second

// forgetKernel invalidates the cached attributes and pages of n and the
// entries of its children, a level at a time.
func forgetKernel(n *fs.Inode) {
	_ = n.NotifyContent(0, 0)
	for name, child := range n.Children() {
		if name == namespace.ControlDir {
			continue
		}
		_ = n.NotifyEntry(name)
		if child.IsDir() {
			forgetKernel(child)
		}
	}
}
