package forget

import (
	"sync/atomic"
	"time"
)

// StatWindow is how long after a file was last looked up by name
// directory reads past the bound still give files' attributes.
const StatWindow = time.Second

// Plus decides whether a directory read gives a file's attributes
// (READDIRPLUS), which makes an inode the kernel then holds: while the
// kernel holds fewer file inodes than the bound, and past it only while
// files are being looked up by name (ls -l of the names it passed without
// attributes), within StatWindow of the last. Its methods are safe for
// concurrent use.
type Plus struct {
	limit    int64
	now      func() time.Time
	inodes   atomic.Int64 // file inodes the kernel holds
	lookupAt atomic.Int64 // when a file was last looked up by name, Unix nanoseconds
}

// NewPlus returns the decision for a bound of limit file inodes on the
// clock now.
func NewPlus(limit int, now func() time.Time) *Plus {
	return &Plus{limit: int64(limit), now: now}
}

// Hold records that the kernel holds n more file inodes (n < 0: it forgot
// -n).
func (p *Plus) Hold(n int64) { p.inodes.Add(n) }

// LookedUp records that a file was looked up by name now.
func (p *Plus) LookedUp() { p.lookupAt.Store(p.now().UnixNano()) }

// File reports whether a directory read gives a file's attributes now.
func (p *Plus) File() bool {
	if p.inodes.Load() < p.limit {
		return true
	}
	return p.now().UnixNano()-p.lookupAt.Load() < int64(StatWindow)
}

// Stats says how many file inodes the kernel holds, and when it last
// looked a file up by name (Unix nanoseconds).
func (p *Plus) Stats() (inodes, lookupAt int64) { return p.inodes.Load(), p.lookupAt.Load() }
