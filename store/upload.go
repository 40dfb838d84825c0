package store

import (
	"context"
	"io"
	"sync"
)

// PutParts sends parts 1..n of up, at most concurrency at a time; part
// returns each part's body and size. The first error cancels the parts
// still running and is returned.
func PutParts(ctx context.Context, up Upload, concurrency, n int, part func(num int) (io.ReaderAt, int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, max(concurrency, 1))
	for num := 1; num <= n; num++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		body, size := part(num)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := up.PutPart(ctx, num, body, size); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if firstErr == nil {
		// Canceled by the caller before every part was started.
		firstErr = ctx.Err()
	}
	return firstErr
}
