package namespace

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Store requests the namespace makes itself: whole-tree listings (rmdir,
// directory renames) and whole-object fetches (staging an existing object
// before it is changed). Neither is cached: they go straight to the store
// under the cache.

// listTree lists up to max keys under prefix, all levels (no delimiter),
// and reports whether there are more.
func (ns *NS) listTree(ctx context.Context, bucket, prefix string, max int) ([]store.Object, bool, error) {
	var out []store.Object
	token := ""
	for {
		rctx, cancel := ns.requestContext(ctx)
		page, err := ns.cache.Store().List(rctx, store.ListInput{Bucket: bucket, Prefix: prefix, Token: token, MaxKeys: min(max+1, 1000)})
		cancel()
		if err != nil {
			return nil, false, err
		}
		out = append(out, page.Objects...)
		if len(out) > max {
			return out[:max], true, nil
		}
		if page.NextToken == "" {
			return out, false, nil
		}
		token = page.NextToken
	}
}

// Fetch chunk size and parallelism: a whole object staged for writing is
// fetched like the read-ahead of a sequential reader.
const (
	fetchChunk    = 8 << 20
	fetchParallel = 8
)

// fetch downloads the whole of obj (pinned to its ETag) into w, with
// ranged GETs in parallel; the first error cancels the rest.
func (ns *NS) fetch(ctx context.Context, bucket string, obj store.Object, w io.WriterAt) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallel)
	for off := int64(0); off < obj.Size && gctx.Err() == nil; off += fetchChunk {
		size := min(fetchChunk, obj.Size-off)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another range failed
			}
			return ns.fetchRange(gctx, bucket, obj, w, off, size)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err() // not every range was fetched if the caller gave up
}

// fill is how a staging file over an object of bucket fetches a part.
func (ns *NS) fill(bucket string) stage.Fill {
	return func(ctx context.Context, key, etag string, off, size int64, w io.WriterAt) error {
		return ns.fetchRange(ctx, bucket, store.Object{Key: key, ETag: etag}, w, off, size)
	}
}

func (ns *NS) fetchRange(ctx context.Context, bucket string, obj store.Object, w io.WriterAt, off, size int64) error {
	ctx, cancel := ns.requestContext(ctx)
	defer cancel()
	body, err := ns.cache.Store().ReadRange(ctx, bucket, obj.Key, obj.ETag, off, size)
	if err != nil {
		return err
	}
	defer body.Close()
	buf := make([]byte, min(size, 1<<20))
	for pos := off; pos < off+size; {
		k, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), off+size-pos)])
		if k > 0 {
			if _, werr := w.WriteAt(buf[:k], pos); werr != nil {
				return werr
			}
			pos += int64(k)
		}
		if rerr != nil {
			if pos < off+size {
				return fmt.Errorf("fetch %s/%s at %d: %w", bucket, obj.Key, pos, rerr)
			}
			break
		}
	}
	return nil
}
