package disk

import "time"

// A block handed to the tier is in no file until it has been written:
// queued for the writers (PutSum, its bytes held by reference) or being
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
	i := k.id()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[i]; ok {
		return true
	}
	_, ok := c.pending[i]
	return ok
}

// onItsWayInto returns block i while it is on its way to the disk: a
// queued block's bytes copied into dst (a new buffer if they do not fit),
// found true; for a block being landed it waits until it is written, and
// returns found false (the caller reads the file). The copy is made under
// c.mu: the writer releases the bytes only after taking the block out of
// pending under the same lock.
func (c *Cache) onItsWayInto(i id, dst []byte) (data []byte, found bool) {
	c.mu.Lock()
	p, ok := c.pending[i]
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	if p.data != nil {
		data = dst
		if cap(dst) < len(p.data) {
			data = make([]byte, len(p.data))
		}
		data = data[:len(p.data)]
		copy(data, p.data)
		c.mu.Unlock()
		return data, true
	}
	c.landWaits.Add(1)
	c.mu.Unlock()
	t := time.NewTimer(c.cfg.PutWait)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	return nil, false
}

// written takes block i out of pending once its write is over (written or
// not). Callers hold c.mu.
func (c *Cache) writtenLocked(i id) {
	if p, ok := c.pending[i]; ok {
		delete(c.pending, i)
		close(p.done)
	}
}

// Land writes the blocks ks before it returns, block j's bytes returned
// by fill(j) (false: none, and none after it). Blocks the tier holds or
// is writing already are skipped. While it runs, a Get of any of them
// waits for its write rather than missing: reading back a file just
// uploaded, even from another process that sees the new object at once,
// costs no GET.
func (c *Cache) Land(ks []Key, fill func(j int) ([]byte, bool)) {
	if c.off.Load() != nil {
		return
	}
	mine := make([]bool, len(ks))
	ids := make([]id, len(ks))
	c.mu.Lock()
	for j, k := range ks {
		ids[j] = k.id()
		if k.ETag == "" || c.closed {
			continue
		}
		if _, ok := c.index[ids[j]]; ok {
			continue
		}
		if _, ok := c.pending[ids[j]]; ok {
			continue
		}
		c.pending[ids[j]] = &onItsWay{done: make(chan struct{})}
		mine[j] = true
	}
	c.mu.Unlock()
	failed := false
	for j, k := range ks {
		if !mine[j] {
			continue
		}
		if !failed {
			data, ok := fill(j)
			if failed = !ok; ok && len(data) > 0 {
				c.write(k, data, Sum(data))
			}
		}
		c.mu.Lock()
		c.writtenLocked(ids[j])
		c.mu.Unlock()
	}
}
