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
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	work := make(chan string)
	start := time.Now()
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, max(footer, chunk))
			for p := range work {
				n, err := readColumns(p, buf, footer, chunk)
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
