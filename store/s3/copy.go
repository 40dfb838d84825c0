package s3

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketfs/bucketfs/store"
)

// copyMax is the largest object one CopyObject copies (store.MaxCopySize);
// larger ones are copied in parts of copyPartSize. Variables so a test can
// take the multipart path with small objects.
var (
	copyMax      int64 = store.MaxCopySize
	copyPartSize int64 = 512 << 20
)

// Copy copies srcKey to dstKey inside bucket on the server: one CopyObject
// up to 5 GiB, else a multipart upload of UploadPartCopy ranges. A
// non-empty srcETag pins the source (x-amz-copy-source-if-match).
func (s *Store) Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (store.Object, error) {
	src, err := s.Stat(ctx, bucket, srcKey)
	if err != nil {
		return store.Object{}, err
	}
	if srcETag != "" && src.ETag != srcETag {
		return store.Object{}, fmt.Errorf("s3 Copy %s/%s: source has ETag %s, not %s: %w", bucket, srcKey, src.ETag, srcETag, store.ErrChanged)
	}
	pin := aws.String(`"` + src.ETag + `"`)
	source := copySource(bucket, srcKey)
	if src.Size > copyMax {
		return s.copyMultipart(ctx, bucket, srcKey, src.ETag, dstKey, src.Size)
	}
	var resp *awss3.CopyObjectOutput
	err = s.call(ctx, bucket, func(c *awss3.Client) (err error) {
		resp, err = c.CopyObject(ctx, &awss3.CopyObjectInput{
			Bucket:            aws.String(bucket),
			Key:               aws.String(dstKey),
			CopySource:        aws.String(source),
			CopySourceIfMatch: pin,
		})
		return err
	})
	if err != nil {
		return store.Object{}, convert("Copy", bucket, srcKey+" -> "+dstKey, err)
	}
	o := store.Object{Key: dstKey, Size: src.Size}
	if r := resp.CopyObjectResult; r != nil {
		o.ETag = unquote(aws.ToString(r.ETag))
		o.ModTime = aws.ToTime(r.LastModified)
	}
	return o, nil
}

// copySource is the x-amz-copy-source value: bucket/key, URL-encoded.
func copySource(bucket, key string) string {
	return bucket + "/" + strings.ReplaceAll(url.PathEscape(key), "%2F", "/")
}

func (s *Store) copyMultipart(ctx context.Context, bucket, srcKey, srcETag, dstKey string, size int64) (_ store.Object, err error) {
	up, err := s.StartUpload(ctx, bucket, dstKey)
	if err != nil {
		return store.Object{}, err
	}
	defer func() {
		if err != nil {
			abortQuietly(ctx, up)
		}
	}()
	n := int((size + copyPartSize - 1) / copyPartSize)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for num := 1; num <= n && gctx.Err() == nil; num++ {
		off := int64(num-1) * copyPartSize
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another part failed
			}
			return up.CopyPart(gctx, num, srcKey, srcETag, off, min(copyPartSize, size-off))
		})
	}
	if err := g.Wait(); err != nil {
		return store.Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	o, err := up.Complete(ctx, n, store.PutOptions{})
	o.Size = size
	return o, err
}
