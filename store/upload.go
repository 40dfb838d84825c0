package store

import (
	"context"
	"io"

	"golang.org/x/sync/errgroup"
)

// PutParts sends parts 1..n of up, at most concurrency at a time; part
// returns each part's body and size. The first error cancels the parts
// still running and is returned; so is the caller's giving up before every
// part was sent.
func PutParts(ctx context.Context, up Upload, concurrency, n int, part func(num int) (io.ReaderAt, int64)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for num := 1; num <= n && gctx.Err() == nil; num++ {
		body, size := part(num)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another part failed
			}
			return up.PutPart(gctx, num, body, size)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
