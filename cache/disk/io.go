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
// One system call moves a whole file: pwritev/preadv of the header page
// and the block's buffer, which O_DIRECT takes when both are aligned to a
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

// writeFile stores the block data of k in a temporary file renamed to p
// once complete.
func (c *Cache) writeFile(p string, k Key, data []byte, sum uint32) error {
	hdr := headers.Get().([]byte)
	defer headers.Put(hdr)
	if err := putHeader(hdr, k, len(data), sum); err != nil {
		return err
	}
	for {
		direct := c.direct.Load()
		err := writeOnce(p, hdr, body(data, direct), direct, c.cfg.Sync)
		if errors.Is(err, errDirect) {
			c.noDirect(err)
			continue
		}
		return err
	}
}

func writeOnce(p string, hdr, body []byte, direct, sync bool) error {
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
	want := len(hdr) + len(body)
	n, err := unix.Pwritev(fd, [][]byte{hdr, body}, 0)
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

// readFile returns the checked bytes of the block file p for k, in dst
// when they fit in its capacity (and, with O_DIRECT, it is aligned).
func (c *Cache) readFile(p string, k Key, dst []byte) ([]byte, error) {
	for {
		direct := c.direct.Load()
		data, err := readOnce(p, k, dst, direct)
		if errors.Is(err, errDirect) {
			c.noDirect(err)
			continue
		}
		return data, err
	}
}

func readOnce(p string, k Key, dst []byte, direct bool) ([]byte, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	// No access time: the first read of a file since it was written
	// would dirty its inode (relatime), a journal entry per block. The
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
	size := st.Size - page
	if size <= 0 || size > padded(k.BlockSize) || size%page != 0 {
		return nil, fmt.Errorf("%w: %d bytes long", errCorrupt, st.Size)
	}
	var buf []byte
	if int64(cap(dst)) >= size && (!direct || isAligned(dst)) {
		buf = dst[:size]
	} else {
		buf = aligned(size)
	}
	hdr := headers.Get().([]byte)
	defer headers.Put(hdr)
	// One read: a local file is read short only at its end.
	n, err := preadv(fd, [][]byte{hdr, buf})
	if err != nil {
		if direct && err == unix.EINVAL {
			return nil, fmt.Errorf("%w: read %s: %v", errDirect, p, err)
		}
		return nil, &os.PathError{Op: "read", Path: p, Err: err}
	}
	if int64(n) < st.Size {
		return nil, fmt.Errorf("%w: cut short", errCorrupt)
	}
	h, err := parseHeader(hdr, k)
	if err != nil {
		return nil, err
	}
	if want := fileSize(h.size); st.Size != want {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errCorrupt, st.Size, want)
	}
	data := buf[:h.size]
	if Sum(data) != h.dataCRC {
		return nil, fmt.Errorf("%w: data checksum mismatch", errCorrupt)
	}
	return data, nil
}

// preadv reads bufs from offset 0 of fd, again when a signal
// interrupted it.
func preadv(fd int, bufs [][]byte) (int, error) {
	for {
		n, err := unix.Preadv(fd, bufs, 0)
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
