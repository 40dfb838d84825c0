package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
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
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	work := make(chan string)
	start := time.Now()
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Anonymous memory is page-aligned, as O_DIRECT wants.
			buf, err := syscall.Mmap(-1, 0, bufSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("buffer: %w", err))
				mu.Unlock()
				for range work {
				}
				return
			}
			defer syscall.Munmap(buf)
			for p := range work {
				n, err := readDirect(p, buf)
				mu.Lock()
				total += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	return result{Bytes: total, Seconds: elapsed.Seconds()}, nil
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
