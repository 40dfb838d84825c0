package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// columnar reads files the way arrow and duckdb read Parquet: per file the
// footer (the last footer bytes), then two column chunks of chunk bytes at
// different offsets (a quarter and five eighths into the file, off any
// block boundary), each with one pread; parallel files at a time, taking
// the files in the order given.
func columnar(paths []string, parallel int, footer, chunk int64) (result, error) {
	newBuf := func() ([]byte, func(), error) { return make([]byte, max(footer, chunk)), func() {}, nil }
	return readFiles(paths, parallel, newBuf, func(p string, buf []byte) (int64, error) {
		return readColumns(p, buf, footer, chunk)
	})
}

// readFiles calls read on every path, parallel paths at a time in the
// order given, each worker with a buffer of its own from newBuf (freed by
// the func it returns), and times the whole: the bytes read, or every
// error.
func readFiles(paths []string, parallel int, newBuf func() ([]byte, func(), error), read func(path string, buf []byte) (int64, error)) (result, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	work := make(chan string)
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, free, err := newBuf()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				for range work { // the other workers take them
				}
				return
			}
			defer free()
			for p := range work {
				n, err := read(p, buf)
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

func readColumns(path string, buf []byte, footer, chunk int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	if size < footer+2*chunk {
		return 0, fmt.Errorf("%s: %d bytes, too small for a footer of %d and two chunks of %d", path, size, footer, chunk)
	}
	var total int64
	for _, r := range [][2]int64{{size - footer, footer}, {size/4 + 12345, chunk}, {size*5/8 + 6789, chunk}} {
		n, err := f.ReadAt(buf[:r[1]], r[0])
		total += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == r[1]) {
			return total, fmt.Errorf("%s at %d: %w", path, r[0], err)
		}
	}
	return total, nil
}
