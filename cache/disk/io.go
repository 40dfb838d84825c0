package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Block files are written and read with O_DIRECT: the bytes go between
// the block's own buffer and the disk, not through the page cache. On
// this project's test VM a buffered write of 1 GiB costs 0.55 s of system
// time (the kernel's copy, page allocation and writeback) against 0.1 s
// direct, and a buffered read after the page cache was dropped runs at
// 370 MiB/s with a core busy in the kernel, against 1.3 GB/s direct
// (fio, docs/BENCHMARKS.md). The tier keeps its own hot blocks in memory,
// so the page cache would only hold a second copy of them.
//
// One system call moves a whole file, or one block of it: pwritev of each
// block's header page and buffer in turn, preadv of one block's header
// page and buffer, which O_DIRECT takes when they are aligned to a
// page (buffers of a block pool are: the Go runtime allocates large
// objects on page boundaries) and the data is padded to a page. A buffer
// that is not aligned goes through an aligned copy. A file system that
// refuses O_DIRECT (EINVAL) turns it off for the rest of the mount: the
// same files are then written and read through the page cache.

// headers recycles aligned header pages.
var headers = sync.Pool{New: func() any { return aligned(page) }}

// aligned returns n bytes starting on a page boundary.
func aligned(n int64) []byte {
	b := make([]byte, n+page)
	off := int64(0)
	if r := int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % page); r != 0 {
		off = page - r
	}
	return b[off : off+n : off+n]
}

// isAligned says whether b starts on a page boundary.
func isAligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%page == 0
}

// body returns the bytes to write after the header for data: data itself
// with its padding zeroed when its buffer can be written as it is, else a
// padded copy. Only the bytes past len(data), which no one reads, are
// changed in the caller's buffer.
func body(data []byte, direct bool) []byte {
	n := padded(int64(len(data)))
	if int64(cap(data)) >= n && (!direct || isAligned(data)) {
		b := data[:n]
		clear(b[len(data):])
		return b
	}
	b := aligned(n)
	copy(b, data)
	return b
}

// errDirect marks an O_DIRECT refusal: the caller goes on without it.
var errDirect = errors.New("O_DIRECT refused")

// writeFile stores blocks ks (consecutive blocks of one object; every
// one but the last BlockSize long), their bytes datas and checksums sums,
// as the file p: a temporary file renamed to p once complete.
func (c *Cache) writeFile(p string, ks []Key, datas [][]byte, sums []uint32) error {
	iov := make([][]byte, 2*len(ks))
	for j, k := range ks {
		hdr := headers.Get().([]byte)
		defer headers.Put(hdr)
		if err := putHeader(hdr, k, len(datas[j]), sums[j]); err != nil {
			return err
		}
		iov[2*j] = hdr
	}
	for {
		direct := c.direct.Load()
		for j, data := range datas {
			iov[2*j+1] = body(data, direct)
		}
		err := writeOnce(p, iov, direct, c.cfg.Sync)
		if errors.Is(err, errDirect) {
			c.noDirect(err)
			continue
		}
		return err
	}
}

func writeOnce(p string, iov [][]byte, direct, sync bool) error {
	tmp := p + ".tmp" + strconv.FormatUint(tmpSeq.Add(1), 36)
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	fd, err := openRetry(tmp, flags, 0o600)
	if err == unix.ENOENT {
		// The fan-out directory is made by the first block in it.
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		fd, err = openRetry(tmp, flags, 0o600)
	}
	if err != nil {
		if direct && err == unix.EINVAL {
			return fmt.Errorf("%w: open %s: %v", errDirect, tmp, err)
		}
		return &os.PathError{Op: "open", Path: tmp, Err: err}
	}
	want := 0
	for _, b := range iov {
		want += len(b)
	}
	n, err := pwritev(fd, iov, direct)
	switch {
	case direct && err == unix.EINVAL:
		err = fmt.Errorf("%w: write %s: %v", errDirect, tmp, err)
	case err != nil:
		err = &os.PathError{Op: "write", Path: tmp, Err: err}
	case n != want:
		// A file is written short when its file system has no room
		// left for the rest (write(2)): the next write would fail so.
		err = &os.PathError{Op: fmt.Sprintf("write (%d bytes of %d)", n, want), Path: tmp, Err: unix.ENOSPC}
	}
	if err == nil && sync {
		if e := unix.Fdatasync(fd); e != nil {
			err = &os.PathError{Op: "fdatasync", Path: tmp, Err: e}
		}
	}
	if e := unix.Close(fd); err == nil && e != nil {
		err = &os.PathError{Op: "close", Path: tmp, Err: e}
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// pwritev writes iov (a header page and a block, for each block) from
// offset 0 of fd: in one call with O_DIRECT, a call per block through the
// page cache, where one write of several MiB costs several times as much
// on this project's test VM (BenchmarkBlockFiles: 1.0-3.2 CPU-s/GiB
// against 0.3, nearly all of it in the kernel's copy into the page cache).
func pwritev(fd int, iov [][]byte, direct bool) (int, error) {
	if direct {
		return unix.Pwritev(fd, iov, 0)
	}
	n := 0
	for j := 0; j < len(iov); j += 2 {
		m, err := unix.Pwritev(fd, iov[j:j+2], int64(n))
		n += m
		if err != nil || m != len(iov[j])+len(iov[j+1]) {
			return n, err
		}
	}
	return n, nil
}

// readFile returns the checked bytes of block k from file f (at p), in
// dst when they fit in its capacity (and, with O_DIRECT, it is aligned).
func (c *Cache) readFile(p string, f fileID, k Key, dst []byte) ([]byte, error) {
	for {
		direct := c.direct.Load()
		data, err := readOnce(p, f, k, dst, direct)
		if errors.Is(err, errDirect) {
			c.noDirect(err)
			continue
		}
		return data, err
	}
}

func readOnce(p string, f fileID, k Key, dst []byte, direct bool) ([]byte, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	// No access time: the first read of a file since it was written
	// would dirty its inode (relatime), a journal entry per file. The
	// order of eviction is kept in the modification time. O_NOATIME
	// needs the file's owner, which the mount is, or else is refused.
	fd, err := openRetry(p, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = openRetry(p, flags, 0)
	}
	if err != nil {
		if direct && err == unix.EINVAL {
			return nil, fmt.Errorf("%w: open %s: %v", errDirect, p, err)
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	// The blocks before the last are whole; the last has its header and
	// at least a page of bytes.
	s := stride(k.BlockSize)
	if st.Size%page != 0 || st.Size < (f.n-1)*s+page+page || st.Size > f.n*s {
		return nil, fmt.Errorf("%w: %d bytes long for %d blocks", errCorrupt, st.Size, f.n)
	}
	j := k.Index - f.first
	off := j * s
	size := min(padded(k.BlockSize), st.Size-off-page)
	var buf []byte
	if int64(cap(dst)) >= size && (!direct || isAligned(dst)) {
		buf = dst[:size]
	} else {
		buf = aligned(size)
	}
	hdr := headers.Get().([]byte)
	defer headers.Put(hdr)
	// One read: a local file is read short only at its end.
	n, err := preadv(fd, [][]byte{hdr, buf}, off)
	if err != nil {
		if direct && err == unix.EINVAL {
			return nil, fmt.Errorf("%w: read %s: %v", errDirect, p, err)
		}
		return nil, &os.PathError{Op: "read", Path: p, Err: err}
	}
	if int64(n) < page+size {
		return nil, fmt.Errorf("%w: cut short", errCorrupt)
	}
	h, err := parseHeader(hdr, k)
	if err != nil {
		return nil, err
	}
	if last := j == f.n-1; (!last && h.size != k.BlockSize) || (last && st.Size != off+fileSize(h.size)) {
		return nil, fmt.Errorf("%w: %d bytes long, block %d of %d holds %d bytes", errCorrupt, st.Size, j+1, f.n, h.size)
	}
	data := buf[:h.size]
	if Sum(data) != h.dataCRC {
		return nil, fmt.Errorf("%w: data checksum mismatch", errCorrupt)
	}
	return data, nil
}

// preadv reads bufs from offset off of fd, again when a signal
// interrupted it.
func preadv(fd int, bufs [][]byte, off int64) (int, error) {
	for {
		n, err := unix.Preadv(fd, bufs, off)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// openRetry is open(2), again when a signal interrupted it.
func openRetry(p string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(p, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// noDirect turns O_DIRECT off for the rest of the mount, saying so once.
func (c *Cache) noDirect(err error) {
	if c.direct.CompareAndSwap(true, false) {
		c.cfg.Logger.Info("disk cache: the file system refuses O_DIRECT; block files go through the page cache", "dir", c.cfg.Dir, "err", err)
	}
}
