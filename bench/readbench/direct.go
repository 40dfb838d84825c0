package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// direct reads every regular file under dir with O_DIRECT, bypassing the
// page cache, in reads of bufSize bytes (a multiple of 4 KiB), readers
// files at a time in path order: the disk's own speed on the files of a
// disk cache, whatever their layout. Files are taken whole; the last read
// of a file whose size is no multiple of 4 KiB comes back short, as
// O_DIRECT allows.
func direct(dir string, readers, bufSize int) (result, error) {
	if bufSize <= 0 || bufSize%4096 != 0 {
		return result{}, fmt.Errorf("--buffer %d: want a positive multiple of 4 KiB (O_DIRECT)", bufSize)
	}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return result{}, err
	}
	if len(paths) == 0 {
		return result{}, fmt.Errorf("%s: no files to read", dir)
	}
	sort.Strings(paths)
	// Anonymous memory is page-aligned, as O_DIRECT wants.
	newBuf := func() ([]byte, func(), error) {
		buf, err := syscall.Mmap(-1, 0, bufSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			return nil, nil, fmt.Errorf("buffer: %w", err)
		}
		return buf, func() { syscall.Munmap(buf) }, nil
	}
	return readFiles(paths, readers, newBuf, readDirect)
}

// readDirect reads path to its end with O_DIRECT into buf.
func readDirect(path string, buf []byte) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		off += int64(n)
		if err != nil || n < len(buf) {
			if err != nil && !errors.Is(err, io.EOF) {
				return off, fmt.Errorf("%s at %d: %w", path, off, err)
			}
			return off, nil
		}
	}
}
