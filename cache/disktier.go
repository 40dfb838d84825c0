package cache

import (
	"context"
	"io"

	"github.com/bucketfs/bucketfs/cache/disk"
	"github.com/bucketfs/bucketfs/store"
)

// The disk tier (Config.Disk) under the memory blocks: asked before a
// GET, handed every block a GET brought, and the blocks of every file the
// mount uploaded. Blocks are keyed there as here, by bucket, key, ETag and
// block number (and block size), so a changed object is never served
// from disk; objects without an ETag are not kept there.

func (b *blockCache) diskKey(o object, idx int64) disk.Key {
	return disk.Key{Bucket: o.bucket, Object: o.key, ETag: o.etag, BlockSize: b.cfg.BlockSize, Index: idx}
}

// onDisk reports whether the disk tier holds (or is writing) every block
// of [from, to] of o. A read that has not earned whole blocks, which
// would GET exactly the bytes asked for (Reader.exact), takes blocks the
// disk holds from there instead: the kernel sends READs in parallel, and
// one at an offset past the start can arrive first, even on a file read
// from its beginning.
func (b *blockCache) onDisk(o object, from, to int64) bool {
	if b.cfg.Disk == nil || o.etag == "" {
		return false
	}
	for i := from; i <= to; i++ {
		if !b.cfg.Disk.Has(b.diskKey(o, i)) {
			return false
		}
	}
	return true
}

// fromDisk completes the blocks of run the disk tier holds, giving their
// share of the budget back (held), and returns the first contiguous run
// still to GET; later runs, split off by blocks found on disk, are
// fetched by fetches of their own. ctx bounds a wait for a block the disk
// tier is still landing.
func (b *blockCache) fromDisk(ctx context.Context, o object, run []blockKey, held *int64, demand bool) []blockKey {
	if b.cfg.Disk == nil {
		return run
	}
	bs := b.cfg.BlockSize
	var runs [][]blockKey
	var cur []blockKey
	for _, k := range run {
		size := min(bs, o.size-k.idx*bs)
		buf := b.pool.get(size)
		if data, ok := b.cfg.Disk.GetInto(ctx, b.diskKey(o, k.idx), buf); ok && int64(len(data)) == size {
			b.finish([]blockKey{k}, newBlock(data), nil)
			b.budget.release(size)
			*held -= size
			if cur != nil {
				runs, cur = append(runs, cur), nil
			}
			continue
		}
		b.pool.put(buf) // seen by no one
		cur = append(cur, k)
	}
	if cur != nil {
		runs = append(runs, cur)
	}
	if len(runs) == 0 {
		return nil
	}
	for _, r := range runs[1:] {
		for _, k := range r {
			size := min(bs, o.size-k.idx*bs)
			b.budget.release(size)
			*held -= size
		}
		go b.fetch(o, r, demand)
	}
	return runs[0]
}

// summer wraps *r, the body of a GET, to checksum each block for the
// disk tier as its bytes arrive (nil without a disk tier).
func (b *blockCache) summer(r *io.Reader) *disk.SumReader {
	if b.cfg.Disk == nil {
		return nil
	}
	s := &disk.SumReader{R: *r}
	*r = s
	return s
}

// kept is a block just received, on its way to the disk tier.
type kept struct {
	idx int64
	blk *block
	sum uint32
}

// keep hands the blocks one GET brought, and their checksums (summer), to
// the disk tier by reference, as one run (one file): the caller took a
// reference on each for the tier, released once the block is written (or
// not queued), so a buffer is not reused for another block while it
// waits in the queue. It runs once the blocks' waiters have them: the
// disk tier may make this fetch wait for room, never a reader of these
// blocks. Until the GET ends its blocks are held within its share of the
// in-flight budget, which the fetch releases only after.
func (b *blockCache) keep(ctx context.Context, o object, run []kept) {
	if len(run) == 0 {
		return
	}
	ks := make([]disk.Key, len(run))
	datas := make([][]byte, len(run))
	sums := make([]uint32, len(run))
	for j, k := range run {
		ks[j], datas[j], sums[j] = b.diskKey(o, k.idx), k.blk.data, k.sum
	}
	// Bounded well inside the stall timeout: a retry of the GET's rest
	// waits behind this.
	ctx, cancel := context.WithTimeout(ctx, b.cfg.StallTimeout/2)
	defer cancel()
	b.cfg.Disk.PutRun(ctx, ks, datas, sums, func(j int) { run[j].blk.release(b.pool) })
}

// Landed puts the bytes of an object the mount just stored into the disk
// tier, block by block, read from r (the staged file), so reading back a
// file just written costs no GET; a read of it meanwhile waits for its
// block's write (disk.Land). o is the stored object (its ETag and size).
func (c *Cache) Landed(bucket, key string, o store.Object, r io.ReaderAt) {
	d := c.cfg.Disk
	if d == nil || o.ETag == "" || o.Size <= 0 {
		return
	}
	obj := object{bucket: bucket, key: key, etag: o.ETag, size: o.Size}
	bs := c.cfg.BlockSize
	ks := make([]disk.Key, obj.blocks(bs))
	for idx := range ks {
		ks[idx] = c.data.diskKey(obj, int64(idx))
	}
	d.Land(ks, func(j int, dst []byte) ([]byte, bool) {
		off := int64(j) * bs
		n := min(bs, o.Size-off)
		m, _ := r.ReadAt(dst[:n], off)
		return dst[:n], int64(m) == n
	})
}

// DiskBytes bounds the memory the disk tier adds: its write queue holds
// references to blocks, which keep their buffers from reuse after the
// memory tier evicted them (at most the queue's bytes), and a GET waiting
// for room in the queue holds its run (within its in-flight budget) and
// one block beyond the receive bound; files just uploaded are read into
// buffers of its own (disk.LandBytes). Call it on a Config
// with defaults applied (Cache.Config).
func (c Config) DiskBytes() int64 {
	if c.Disk == nil {
		return 0
	}
	return c.Disk.QueueBytes() + c.ReceiveBytes() + disk.LandBytes(c.BlockSize)
}

// DiskStats returns the disk tier's counters; ok is false without one.
func (c *Cache) DiskStats() (s disk.Stats, ok bool) {
	if c.cfg.Disk == nil {
		return s, false
	}
	return c.cfg.Disk.Stats(), true
}
