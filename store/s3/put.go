package s3store

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketfs/bucketfs/store"
)

const (
	// multipartThreshold is the size above which Put uploads in parts.
	multipartThreshold = 16 << 20
	// minPartSize is the part size unless the object needs bigger parts to
	// stay within S3's limit of maxParts.
	minPartSize = 16 << 20
	maxParts    = 10000
	// partConcurrency bounds parts in flight: each streams from body, so
	// memory stays small, and more rarely helps a single host.
	partConcurrency = 4
	// abortTimeout bounds the cleanup after a failed multipart upload,
	// which runs even when the caller's context is already canceled.
	abortTimeout = 30 * time.Second
)

// Put stores size bytes of body under key: one PutObject up to 16 MiB,
// above that a multipart upload with parts sent in parallel. A failed
// multipart upload is aborted so no parts linger. The returned Object has
// no ModTime: S3 does not send it in upload responses.
func (s *Store) Put(ctx context.Context, bucket, key string, body io.ReaderAt, size int64) (store.Object, error) {
	if size < 0 {
		return store.Object{}, fmt.Errorf("s3 Put %s/%s: negative size %d", bucket, key, size)
	}
	if size <= multipartThreshold {
		var resp *s3.PutObjectOutput
		err := s.call(ctx, bucket, func(c *s3.Client) (err error) {
			resp, err = c.PutObject(ctx, &s3.PutObjectInput{
				Bucket:        aws.String(bucket),
				Key:           aws.String(key),
				Body:          io.NewSectionReader(body, 0, size),
				ContentLength: aws.Int64(size),
			})
			return err
		})
		if err != nil {
			return store.Object{}, convert("Put", bucket, key, err)
		}
		return store.Object{Key: key, Size: size, ETag: unquote(aws.ToString(resp.ETag))}, nil
	}
	return s.putMultipart(ctx, bucket, key, body, size)
}

func partSize(size int64) int64 {
	ps := int64(minPartSize)
	if need := (size + maxParts - 1) / maxParts; need > ps {
		// Round up to a MiB so parts stay tidy.
		ps = (need + (1<<20 - 1)) &^ (1<<20 - 1)
	}
	return ps
}

func (s *Store) putMultipart(ctx context.Context, bucket, key string, body io.ReaderAt, size int64) (_ store.Object, err error) {
	// CRC32 part checksums, declared up front, are what the SDK's upload
	// manager uses; S3 rejects a completion whose parts carry checksums
	// the upload was not created with.
	// The whole upload stays with the client (region) that created it.
	var created *s3.CreateMultipartUploadOutput
	var client *s3.Client
	err = s.call(ctx, bucket, func(c *s3.Client) (err error) {
		client = c
		created, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(bucket),
			Key:               aws.String(key),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		return err
	})
	if err != nil {
		return store.Object{}, convert("Put", bucket, key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: uploadID,
		})
		if aerr != nil {
			s.log.Warn("abort multipart upload failed; parts may linger until a lifecycle rule removes them",
				"bucket", bucket, "key", key, "err", convert("AbortMultipartUpload", bucket, key, aerr))
		}
	}()

	parts, err := s.uploadParts(ctx, client, bucket, key, uploadID, body, size)
	if err != nil {
		return store.Object{}, err
	}
	done, err := client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return store.Object{}, convert("Put", bucket, key, err)
	}
	return store.Object{Key: key, Size: size, ETag: unquote(aws.ToString(done.ETag))}, nil
}

// uploadParts sends all parts, partConcurrency at a time, and returns them
// in part-number order. The first error cancels the parts still running.
func (s *Store) uploadParts(ctx context.Context, client *s3.Client, bucket, key string, uploadID *string, body io.ReaderAt, size int64) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := partSize(size)
	var (
		mu       sync.Mutex
		parts    []types.CompletedPart
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, partConcurrency)
	for num, off := int32(1), int64(0); off < size; num, off = num+1, off+ps {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		n := min(ps, size-off)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:            aws.String(bucket),
				Key:               aws.String(key),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				Body:              io.NewSectionReader(body, off, n),
				ContentLength:     aws.Int64(n),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = convert(fmt.Sprintf("Put part %d", num), bucket, key, err)
					cancel()
				}
				return
			}
			parts = append(parts, types.CompletedPart{
				PartNumber:    aws.Int32(num),
				ETag:          resp.ETag,
				ChecksumCRC32: resp.ChecksumCRC32,
			})
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = convert("Put", bucket, key, ctx.Err())
	}
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	return parts, nil
}
