// Package disk is the second tier of the block cache: blocks of object data
// kept in files under a local directory (--disk-cache), so that they
// outlive the mount. The memory tier asks it on a miss (Get) and hands it
// every block it fetched (Put, written in the background).
//
// One file per run of consecutive blocks of one object (the blocks one GET
// brought, up to 4 MiB by default), named by a hash of (bucket, key, ETag,
// block size), the first block's number and the count, below a fan-out of
// 256 directories: one create, write and rename per run rather than per
// block. Each block in a file has its own header with the whole key and
// CRC-32C checksums, checked on every read (of one block: one preadv);
// a file is written under a temporary name then renamed, so a run cut
// short is never served, and a block that fails its checks drops its
// whole file. At start the index is rebuilt from the directory (names and
// sizes only); least recently used files are evicted past the size bound,
// the order surviving restarts through the files' modification times. A full or failing disk (ENOSPC, EIO, a read-only file system)
// turns the tier off for the rest of the mount: reads carry on from memory
// and the store, never failing because of this cache.
package disk

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config says where the tier lives and how large it may grow.
type Config struct {
	// Dir holds the blocks; created 0700 if missing.
	Dir string
	// Limit bounds the bytes of the block files (--disk-cache-size).
	Limit int64
	// QueueBytes bounds the blocks waiting to be written; a Put past it
	// waits up to PutWait for room, then is dropped (counted).
	QueueBytes int64
	PutWait    time.Duration
	// Sync makes every block file durable (fdatasync) before it is renamed
	// into place. Without it a block lost in a crash of the host is only
	// missing or caught by its checksum.
	Sync bool
	// Paused holds the writers back until Resume (tests: blocks stay
	// queued).
	Paused bool
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults for zero fields of Config.
const (
	DefaultLimit      = 10 << 30
	DefaultQueueBytes = 64 << 20
	DefaultPutWait    = 5 * time.Second
	// touchEvery is how often a block read again has its modification
	// time moved forward: the order of eviction across restarts is kept to
	// within this.
	touchEvery = time.Minute
	writers    = 2
	// closingWait is how long a mount waits for the directory's lock
	// while its holder is closing (it writes its queue for at most 10 s at
	// unmount, cmd/bucketfs closeDiskCache).
	closingWait = 15 * time.Second
)

// Stats are the tier's counters.
type Stats struct {
	Hits, Misses          int64 // blocks asked for: found and valid, or not
	BytesRead, BytesWrite int64 // bytes served from disk, written to it
	Evictions             int64 // blocks removed to stay under Limit
	Errors                int64 // files dropped as corrupt (once each), failed writes and reads
	Dropped               int64 // blocks not written because the queue was full
	Blocks, Bytes, Limit  int64 // held now, and the bound
	// Off is why the tier stopped ("" while it works).
	Off string
}

// Cache is one mount's disk tier. Its methods are safe for concurrent use.
type Cache struct {
	cfg  Config
	lock *os.File

	mu sync.Mutex
	// index maps every block on disk to its file in lru.
	index map[bid]*list.Element // of *entry
	lru   *list.List            // of files; front: most recently used
	used  int64
	// queued, closed, congested and room guard Put's hand-off to the
	// writers; room is closed (and replaced) whenever a writer frees some.
	queued    int64
	closed    bool
	congested bool
	room      chan struct{}
	queue     chan item
	wg        sync.WaitGroup
	// pending holds the blocks on their way to a file (pending.go).
	pending map[bid]*onItsWay
	landing chan struct{} // a slot per Land reading blocks (pending.go)
	resume  chan struct{} // closed: the writers may write (Config.Paused)

	off     atomic.Pointer[string]
	direct  atomic.Bool // block files use O_DIRECT (io.go)
	corrupt atomic.Bool // the first corrupt block was logged

	hits, misses, bytesRead, bytesWritten, evictions, errs, dropped atomic.Int64
	landWaits                                                       atomic.Int64 // Gets that waited for a block being landed
}

// entry is one file.
type entry struct {
	f       fileID
	size    int64 // of the file, headers included
	touched time.Time
	gone    bool // out of the index
}

// item is a run of blocks of one object queued for the writers.
type item struct {
	ks    []Key
	bids  []bid
	datas [][]byte
	sums  []uint32    // Sum(datas[j])
	done  func(j int) // the writer is through with datas[j]; may be nil
	bytes int64
}

// Open prepares the directory (refusing one that is not safe to serve
// from, or that another mount uses), rebuilds the index from it and starts
// the writers. warning is non-empty when the directory is on a network
// file system, or smaller than the limit: worth telling the user.
func Open(cfg Config) (c *Cache, warning string, err error) {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.PutWait <= 0 {
		cfg.PutWait = DefaultPutWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, "", err
	}
	if err := prepare(cfg.Dir); err != nil {
		return nil, "", err
	}
	lock, err := lockDir(cfg.Dir, closingWait, cfg.Logger)
	if err != nil {
		return nil, "", err
	}
	c = &Cache{cfg: cfg, lock: lock, index: map[bid]*list.Element{}, pending: map[bid]*onItsWay{}, landing: make(chan struct{}, landAtOnce), lru: list.New(), queue: make(chan item, 4096), room: make(chan struct{})}
	c.direct.Store(true)
	t0 := time.Now()
	if err := c.load(); err != nil {
		lock.Close()
		return nil, "", fmt.Errorf("disk cache directory %s: %v", cfg.Dir, err)
	}
	c.mu.Lock()
	c.evict(0) // a limit lowered since the last mount
	c.mu.Unlock()
	cfg.Logger.Info("disk cache ready", "dir", cfg.Dir, "blocks", len(c.index), "files", c.lru.Len(), "bytes", c.used, "limit", cfg.Limit, "indexed_in", time.Since(t0).Round(time.Millisecond))
	if fs := networkFS(cfg.Dir); fs != "" {
		warning = fmt.Sprintf("disk cache directory %s is on a network file system (%s): reads from it are slow and other hosts may share it; use a local directory such as /var/tmp/bucketfs-$USER", cfg.Dir, fs)
	} else if free, ok := freeBytes(cfg.Dir); ok && free+c.used < cfg.Limit {
		warning = fmt.Sprintf("disk cache directory %s has %d MiB free, less than --disk-cache-size %d MiB: the disk cache stops when the disk fills", cfg.Dir, (free+c.used)>>20, cfg.Limit>>20)
	}
	c.resume = make(chan struct{})
	if !cfg.Paused {
		close(c.resume)
	}
	for range writers {
		c.wg.Add(1)
		go c.writer()
	}
	return c, warning, nil
}

// load indexes the files in the directory, oldest first, and removes the
// temporary files of writes an earlier mount did not finish and the files
// of an earlier format. It reads names and sizes only, four directories at
// a time.
func (c *Cache) load() error {
	tops, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		es   []*entry
		old  int
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
	)
	for _, t := range tops {
		if !t.IsDir() || !isFanout(t.Name()) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			got, n, err := loadDir(filepath.Join(c.cfg.Dir, t.Name()), t.Name())
			mu.Lock()
			es = append(es, got...)
			old += n
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	if old > 0 {
		c.cfg.Logger.Info("disk cache: removed the block files of an earlier bucketfs (another format)", "dir", c.cfg.Dir, "files", old)
	}
	sortByTouched(es)
	for _, e := range es {
		if c.claimed(e.f) {
			// Two files holding one block: never two answers. The
			// writers never make such a pair; keep the older.
			_ = os.Remove(e.f.path(c.cfg.Dir))
			continue
		}
		c.add(e)
	}
	return nil
}

// claimed says whether a block of f is indexed. Callers hold c.mu (or
// are alone, at load).
func (c *Cache) claimed(f fileID) bool {
	for j := range f.n {
		if _, ok := c.index[bid{o: f.o, idx: f.first + j}]; ok {
			return true
		}
	}
	return false
}

// add indexes the file e as the most recently used. Callers hold c.mu.
func (c *Cache) add(e *entry) {
	el := c.lru.PushFront(e)
	for j := range e.f.n {
		c.index[bid{o: e.f.o, idx: e.f.first + j}] = el
	}
	c.used += e.size
}

// loadDir reads one fan-out directory; old counts the files of an
// earlier format it removed.
func loadDir(sub, prefix string) (es []*entry, old int, err error) {
	files, err := os.ReadDir(sub)
	if err != nil {
		return nil, 0, err
	}
	es = make([]*entry, 0, len(files))
	for _, fe := range files {
		name := fe.Name()
		if base, _, tmp := strings.Cut(name, ".tmp"); tmp {
			if _, ok := parseName(base); ok || oldName(base) {
				_ = os.Remove(filepath.Join(sub, name))
			}
			continue
		}
		if oldName(name) {
			if os.Remove(filepath.Join(sub, name)) == nil {
				old++
			}
			continue
		}
		f, ok := parseName(name)
		if !ok || f.fanout() != prefix {
			continue
		}
		fi, err := fe.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		es = append(es, &entry{f: f, size: fi.Size(), touched: fi.ModTime()})
	}
	return es, old, nil
}

// isFanout says whether s names one of the 256 directories ("00".."ff").
func isFanout(s string) bool {
	if len(s) != 2 {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 8)
	return err == nil && strings.ToLower(s) == s
}

// sortByTouched orders es oldest first.
func sortByTouched(es []*entry) {
	slices.SortFunc(es, func(a, b *entry) int { return a.touched.Compare(b.touched) })
}

var tmpSeq atomic.Uint64

// Get returns the block k if the tier holds a valid copy. A copy that
// fails its checks is removed; a disk that fails turns the tier off.
func (c *Cache) Get(k Key) ([]byte, bool) {
	return c.GetInto(context.Background(), k, nil)
}

// GetInto is Get reading into dst when the block fits in its capacity (a
// recycled buffer: no allocation per block), else into a new buffer. dst's
// bytes are undefined afterwards whatever it returns. A block being landed
// is waited for until its write ends, at most PutWait, or until ctx ends.
func (c *Cache) GetInto(ctx context.Context, k Key, dst []byte) ([]byte, bool) {
	if c.off.Load() != nil || k.ETag == "" {
		return nil, false
	}
	b := k.bid()
	now := c.cfg.Now()
	c.mu.Lock()
	if p, ok := c.pending[b]; ok {
		if data, ok := c.queuedLocked(p, dst); ok {
			c.mu.Unlock()
			c.hits.Add(1)
			c.bytesRead.Add(int64(len(data)))
			return data, true
		}
		c.landWaits.Add(1)
		c.mu.Unlock()
		c.waitLanded(ctx, p)
		c.mu.Lock()
	}
	el, ok := c.index[b]
	var e *entry
	touch := false
	if ok {
		c.lru.MoveToFront(el)
		e = el.Value.(*entry)
		if now.Sub(e.touched) > touchEvery {
			e.touched, touch = now, true
		}
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	p := e.f.path(c.cfg.Dir)
	data, err := c.readFile(p, e.f, k, dst)
	if err != nil {
		c.misses.Add(1)
		switch {
		case errors.Is(err, errCorrupt):
			if !c.drop(el, p) {
				break // another read of the file's blocks found it first
			}
			c.errs.Add(1)
			if c.corrupt.CompareAndSwap(false, true) {
				c.cfg.Logger.Warn("disk cache: dropped a corrupt block file; its blocks are fetched again (further ones are logged at debug level)", "file", p, "err", err)
			} else {
				c.cfg.Logger.Debug("disk cache: dropped a corrupt block file", "file", p, "err", err)
			}
		case errors.Is(err, os.ErrNotExist):
			c.mu.Lock()
			c.forgetLocked(el)
			c.mu.Unlock()
		default:
			c.errs.Add(1)
			c.fail(err)
		}
		return nil, false
	}
	if touch {
		_ = os.Chtimes(p, now, now)
	}
	c.hits.Add(1)
	c.bytesRead.Add(int64(len(data)))
	return data, true
}

// PutRun hands blocks ks of one object (in order, as a GET brought them;
// written as one file where they are consecutive) to the writers by
// reference, with datas their bytes and sums their checksums (Sum: a
// SumReader computes them as the bytes arrive, while they are still in the
// CPU's cache; a pass over them later reads them from memory again). A
// wrong sum only makes the block fail its check when read: it is never
// served. The caller must not change or reuse datas[j] until done(j) runs
// (once per block: after it is written, or at once when it is not queued;
// done may be nil). Blocks the tier holds or is writing already are not
// queued again. When the queue is full it waits for room, for at most
// PutWait or until ctx ends (the caller's bound): a disk a little slower
// than the network slows the fetch that called it (never a reader's own
// block, which the caller hands out first) rather than losing blocks. A
// wait that runs out marks the disk congested: until the queue has
// drained to half, blocks are dropped (counted) at once. With the tier
// off nothing is kept. Blocks of objects without an ETag are never kept:
// nothing could tell, after a restart, that the object did not change.
func (c *Cache) PutRun(ctx context.Context, ks []Key, datas [][]byte, sums []uint32, done func(j int)) {
	var mine []int // the blocks queued
	defer func() {
		if done == nil {
			return
		}
		for j, m := 0, 0; j < len(ks); j++ {
			if m < len(mine) && mine[m] == j {
				m++
				continue
			}
			done(j)
		}
	}()
	if c.off.Load() != nil || len(ks) == 0 || ks[0].ETag == "" {
		return
	}
	bids := make([]bid, len(ks))
	o := ks[0].oid()
	for j, k := range ks {
		bids[j] = bid{o: o, idx: k.Index}
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var n int64
		mine = mine[:0]
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		for j, b := range bids {
			_, held := c.index[b]
			_, coming := c.pending[b]
			if !held && !coming && len(datas[j]) > 0 {
				mine = append(mine, j)
				n += int64(len(datas[j]))
			}
		}
		if len(mine) == 0 {
			c.mu.Unlock()
			return
		}
		if c.queued+n <= c.cfg.QueueBytes || c.queued == 0 {
			it := item{ks: make([]Key, len(mine)), bids: make([]bid, len(mine)), datas: make([][]byte, len(mine)), sums: make([]uint32, len(mine)), bytes: n}
			for m, j := range mine {
				it.ks[m], it.bids[m], it.datas[m], it.sums[m] = ks[j], bids[j], datas[j], sums[j]
			}
			if done != nil {
				idx := slices.Clone(mine)
				it.done = func(m int) { done(idx[m]) }
			}
			select {
			case c.queue <- it:
				c.queued += n
				for m, b := range it.bids {
					c.pending[b] = &onItsWay{data: it.datas[m], done: make(chan struct{})}
				}
			default:
				c.dropped.Add(int64(len(mine)))
				mine = mine[:0]
			}
			c.mu.Unlock()
			return
		}
		if c.congested {
			c.mu.Unlock()
			c.dropped.Add(int64(len(mine)))
			mine = mine[:0]
			return
		}
		room := c.room
		c.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(c.cfg.PutWait)
		}
		select {
		case <-room:
			continue
		case <-ctx.Done():
		case <-timer.C:
		}
		c.mu.Lock()
		c.congested = true
		c.mu.Unlock()
		c.cfg.Logger.Debug("disk cache: the disk is slower than the network; blocks are dropped until the queue drains", "dir", c.cfg.Dir)
		c.dropped.Add(int64(len(mine)))
		mine = mine[:0]
		return
	}
}

// Resume lets the writers of a tier opened Paused write.
func (c *Cache) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.resume:
	default:
		close(c.resume)
	}
}

func (c *Cache) writer() {
	defer c.wg.Done()
	<-c.resume
	for it := range c.queue {
		c.writeRun(it.ks, it.datas, it.sums)
		c.mu.Lock()
		// Out of pending before the bytes are let go: a Get copies
		// them under c.mu.
		for _, b := range it.bids {
			c.writtenLocked(b)
		}
		c.queued -= it.bytes
		if c.queued <= c.cfg.QueueBytes/2 {
			c.congested = false
		}
		close(c.room)
		c.room = make(chan struct{})
		c.mu.Unlock()
		if it.done != nil {
			for m := range it.ks {
				it.done(m)
			}
		}
	}
}

// writeRun stores blocks ks of one object, in files of consecutive
// blocks: a file ends where the numbers jump, after a block shorter than
// BlockSize (the object's last) and at maxRun blocks.
func (c *Cache) writeRun(ks []Key, datas [][]byte, sums []uint32) {
	for len(ks) > 0 {
		n := 1
		for n < len(ks) && n < maxRun && ks[n].Index == ks[n-1].Index+1 && int64(len(datas[n-1])) == ks[n-1].BlockSize {
			n++
		}
		c.write(ks[:n], datas[:n], sums[:n])
		ks, datas, sums = ks[n:], datas[n:], sums[n:]
	}
}

// write stores consecutive blocks ks as one file: room first (evicting),
// then a temporary file renamed into place, then the index. Blocks the
// index holds already are left out (the file is split around them), so
// no block is in two files.
func (c *Cache) write(ks []Key, datas [][]byte, sums []uint32) {
	if c.off.Load() != nil {
		return
	}
	f := ks[0].file(int64(len(ks)))
	var size, n int64
	for _, d := range datas {
		size += fileSize(int64(len(d)))
		n += int64(len(d))
	}
	c.mu.Lock()
	for j := range ks {
		if _, ok := c.index[bid{o: f.o, idx: f.first + int64(j)}]; ok {
			c.mu.Unlock()
			if j > 0 {
				c.write(ks[:j], datas[:j], sums[:j])
			}
			if j+1 < len(ks) {
				c.write(ks[j+1:], datas[j+1:], sums[j+1:])
			}
			return
		}
	}
	if size > c.cfg.Limit {
		c.mu.Unlock()
		if len(ks) > 1 { // a bound smaller than a run: a file per block
			for j := range ks {
				c.write(ks[j:j+1], datas[j:j+1], sums[j:j+1])
			}
		}
		return
	}
	c.evict(size)
	c.used += size // reserved while the file is written
	c.mu.Unlock()
	p := f.path(c.cfg.Dir)
	err := c.writeFile(p, ks, datas, sums)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used -= size
	if err != nil {
		c.errs.Add(1)
		c.failLocked(err)
		return
	}
	c.add(&entry{f: f, size: size, touched: c.cfg.Now()})
	c.bytesWritten.Add(n)
}

// evict removes least recently used files until size more bytes fit.
// Callers hold c.mu.
func (c *Cache) evict(size int64) {
	for c.used+size > c.cfg.Limit {
		el := c.lru.Back()
		if el == nil {
			return
		}
		e := el.Value.(*entry)
		c.forgetLocked(el)
		c.evictions.Add(e.f.n)
		if err := os.Remove(e.f.path(c.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.failLocked(err)
		}
	}
}

// drop removes a file that failed its checks, and all its blocks. It
// reports whether this call dropped it: reads of several of its blocks
// at once each find it damaged, and it counts as one error.
func (c *Cache) drop(el *list.Element, p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el.Value.(*entry).gone {
		return false // dropped, or evicted, since it was read
	}
	c.forgetLocked(el)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.failLocked(err)
	}
	return true
}

// forgetLocked takes a file and its blocks out of the index. Callers hold
// c.mu.
func (c *Cache) forgetLocked(el *list.Element) {
	e := el.Value.(*entry)
	if e.gone {
		return
	}
	e.gone = true
	for j := range e.f.n {
		b := bid{o: e.f.o, idx: e.f.first + j}
		if c.index[b] == el {
			delete(c.index, b)
		}
	}
	c.lru.Remove(el)
	c.used -= e.size
}

func (c *Cache) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(err)
}

// failLocked turns the tier off when the disk itself fails; other errors
// are logged at debug level. Callers hold c.mu.
func (c *Cache) failLocked(err error) {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		c.cfg.Logger.Debug("disk cache: write failed", "err", err)
		return
	}
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.ENOTDIR:
	default:
		c.cfg.Logger.Debug("disk cache: write failed", "err", err)
		return
	}
	why := fmt.Sprintf("%s (%s)", errno.Error(), c.cfg.Dir)
	if c.off.CompareAndSwap(nil, &why) {
		c.cfg.Logger.Error("disk cache off for the rest of this mount: reads go on from memory and the store; fix the directory and remount", "dir", c.cfg.Dir, "err", err)
	}
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	blocks, used := int64(len(c.index)), c.used
	c.mu.Unlock()
	s := Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(),
		BytesRead: c.bytesRead.Load(), BytesWrite: c.bytesWritten.Load(),
		Evictions: c.evictions.Load(), Errors: c.errs.Load(), Dropped: c.dropped.Load(),
		Blocks: blocks, Bytes: used, Limit: c.cfg.Limit,
	}
	if off := c.off.Load(); off != nil {
		s.Off = *off
	}
	return s
}

// QueueBytes is the most the blocks waiting to be written may take.
func (c *Cache) QueueBytes() int64 { return c.cfg.QueueBytes }

// LandBytes is the most the buffers of Land take at once, for blocks of
// blockSize bytes.
func LandBytes(blockSize int64) int64 { return landAtOnce * landRun * padded(blockSize) }

// Dir is the directory of the tier.
func (c *Cache) Dir() string { return c.cfg.Dir }

// Close writes the blocks still queued (until ctx ends), then releases the
// directory for the next mount.
func (c *Cache) Close(ctx context.Context) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.queue)
	c.mu.Unlock()
	markClosing(c.lock)
	c.Resume()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Stop writing: what is left is not kept.
		why := "closing"
		c.off.CompareAndSwap(nil, &why)
		<-done
	}
	c.lock.Close()
}
