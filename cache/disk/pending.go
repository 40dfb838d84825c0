package disk

import (
	"context"
	"time"
)

// A block handed to the tier is in no file until it has been written:
// queued for the writers (PutRun, its bytes held by reference) or being
// landed (Land, its bytes read from a staging file one block after
// another). Meanwhile Get finds it here rather than missing: a queued
// block is copied from its bytes, and a block being landed is waited for
// (at most PutWait). So a block the memory tier let go of while it was on
// its way to the disk costs no GET, and neither does reading back a file
// whose blocks are still being written.

// onItsWay is a block in no file yet.
type onItsWay struct {
	data []byte        // the queued bytes; nil while landing
	done chan struct{} // closed once it is written, or given up
}

// Has reports whether the tier holds block k, or is writing it: a Get
// would find it unless its file turns out damaged. It does no I/O.
func (c *Cache) Has(k Key) bool {
	if c.off.Load() != nil || k.ETag == "" {
		return false
	}
	b := k.bid()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[b]; ok {
		return true
	}
	_, ok := c.pending[b]
	return ok
}

// queuedLocked returns the bytes of p, a queued block, copied into dst (a
// new buffer if they do not fit); ok is false for a block being landed.
// The copy is made under c.mu, which callers hold: the writer releases
// the bytes only after taking the block out of pending under it.
func (c *Cache) queuedLocked(p *onItsWay, dst []byte) (data []byte, ok bool) {
	if p.data == nil {
		return nil, false
	}
	data = dst
	if cap(dst) < len(p.data) {
		data = make([]byte, len(p.data))
	}
	data = data[:len(p.data)]
	copy(data, p.data)
	return data, true
}

// waitLanded waits until p, a block being landed, is written or given
// up, at most PutWait or until ctx ends.
func (c *Cache) waitLanded(ctx context.Context, p *onItsWay) {
	t := time.NewTimer(c.cfg.PutWait)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// written takes block b out of pending once its write is over (written or
// not). Callers hold c.mu.
func (c *Cache) writtenLocked(b bid) {
	if p, ok := c.pending[b]; ok {
		delete(c.pending, b)
		close(p.done)
	}
}

// landRun is the most blocks Land writes as one file, as a GET brings
// them by default; it reads them into buffers of its own first. At most
// landAtOnce Lands read at once (the others wait), so many files closed
// together hold at most LandBytes of buffers.
const (
	landRun    = 4
	landAtOnce = 4
)

// Land writes the blocks ks (of one object, in order) before it returns,
// in files of up to landRun consecutive blocks. fill(j, dst) returns
// block j's bytes, read into dst (BlockSize long) or in a buffer of the
// caller's, unchanged until Land returns; false: none, and none after it.
// Blocks the tier holds or is writing already are skipped. While it runs,
// a Get of any of them waits for its write rather than missing: reading
// back a file just uploaded, even from another process that sees the new
// object at once, costs no GET.
func (c *Cache) Land(ks []Key, fill func(j int, dst []byte) ([]byte, bool)) {
	if c.off.Load() != nil || len(ks) == 0 {
		return
	}
	mine := make([]bool, len(ks))
	bids := make([]bid, len(ks))
	o := ks[0].oid()
	c.mu.Lock()
	for j, k := range ks {
		bids[j] = bid{o: o, idx: k.Index}
		if k.ETag == "" || c.closed {
			continue
		}
		if _, ok := c.index[bids[j]]; ok {
			continue
		}
		if _, ok := c.pending[bids[j]]; ok {
			continue
		}
		c.pending[bids[j]] = &onItsWay{done: make(chan struct{})}
		mine[j] = true
	}
	c.mu.Unlock()
	// A slot, once the blocks are marked on their way: a Get of them
	// meanwhile waits for this Land (at most PutWait) rather than
	// missing. The slots' holders only read and write files.
	c.landing <- struct{}{}
	defer func() { <-c.landing }()
	var bufs [landRun][]byte
	failed := false
	for j := 0; j < len(ks); {
		if !mine[j] {
			j++
			continue
		}
		e := j + 1
		for e < len(ks) && e-j < landRun && mine[e] && ks[e].Index == ks[e-1].Index+1 {
			e++
		}
		var (
			run   []Key
			datas [][]byte
			sums  []uint32
		)
		for m := j; m < e && !failed; m++ {
			if bufs[m-j] == nil {
				bufs[m-j] = aligned(padded(ks[m].BlockSize))[:ks[m].BlockSize]
			}
			data, ok := fill(m, bufs[m-j])
			if failed = !ok; ok && len(data) > 0 {
				run, datas, sums = append(run, ks[m]), append(datas, data), append(sums, Sum(data))
			}
		}
		if len(run) > 0 {
			c.writeRun(run, datas, sums)
		}
		c.mu.Lock()
		for m := j; m < e; m++ {
			c.writtenLocked(bids[m])
		}
		c.mu.Unlock()
		j = e
	}
}
