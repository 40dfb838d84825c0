package s3

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketfs/bucketfs/store"
)

// upload is one multipart upload. The whole upload stays with the client
// (region) that created it.
type upload struct {
	s           *Store
	client      *awss3.Client
	bucket, key string
	id          *string

	mu    sync.Mutex
	parts map[int]types.CompletedPart // latest answer for each part number
	sizes map[int]int64
}

// StartUpload creates a multipart upload. Parts carry CRC32 checksums,
// declared up front as the SDK's upload manager does: S3 rejects a
// completion whose parts carry checksums the upload was not created with.
func (s *Store) StartUpload(ctx context.Context, bucket, key string) (store.Upload, error) {
	u := &upload{s: s, bucket: bucket, key: key, parts: map[int]types.CompletedPart{}, sizes: map[int]int64{}}
	err := s.call(ctx, bucket, func(c *awss3.Client) error {
		u.client = c
		out, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
			Bucket:            aws.String(bucket),
			Key:               aws.String(key),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err == nil {
			u.id = out.UploadId
		}
		return err
	})
	if err != nil {
		return nil, convert("CreateMultipartUpload", bucket, key, err)
	}
	return u, nil
}

func (u *upload) PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error {
	if num < 1 || num > store.MaxParts || size < 0 || size > store.MaxPartSize {
		return fmt.Errorf("s3 UploadPart %s/%s: part %d of %d bytes out of range", u.bucket, u.key, num, size)
	}
	resp, err := u.client.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket:            aws.String(u.bucket),
		Key:               aws.String(u.key),
		UploadId:          u.id,
		PartNumber:        aws.Int32(int32(num)),
		Body:              io.NewSectionReader(body, 0, size),
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return convert(fmt.Sprintf("UploadPart %d", num), u.bucket, u.key, err)
	}
	u.mu.Lock()
	u.parts[num] = types.CompletedPart{PartNumber: aws.Int32(int32(num)), ETag: resp.ETag, ChecksumCRC32: resp.ChecksumCRC32}
	u.sizes[num] = size
	u.mu.Unlock()
	return nil
}

// CopyPart is UploadPartCopy of the range [off, off+size) of srcKey.
func (u *upload) CopyPart(ctx context.Context, num int, srcKey, srcETag string, off, size int64) error {
	if num < 1 || num > store.MaxParts || size <= 0 || size > store.MaxPartSize || off < 0 {
		return fmt.Errorf("s3 UploadPartCopy %s/%s: part %d of %d bytes at %d out of range", u.bucket, u.key, num, size, off)
	}
	in := &awss3.UploadPartCopyInput{
		Bucket:          aws.String(u.bucket),
		Key:             aws.String(u.key),
		UploadId:        u.id,
		PartNumber:      aws.Int32(int32(num)),
		CopySource:      aws.String(copySource(u.bucket, srcKey)),
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+size-1)),
	}
	if srcETag != "" {
		in.CopySourceIfMatch = aws.String(`"` + srcETag + `"`)
	}
	resp, err := u.client.UploadPartCopy(ctx, in)
	if err != nil {
		return convert(fmt.Sprintf("UploadPartCopy %d", num), u.bucket, srcKey, err)
	}
	part := types.CompletedPart{PartNumber: aws.Int32(int32(num))}
	if r := resp.CopyPartResult; r != nil {
		part.ETag, part.ChecksumCRC32 = r.ETag, r.ChecksumCRC32
	}
	u.mu.Lock()
	u.parts[num], u.sizes[num] = part, size
	u.mu.Unlock()
	return nil
}

func (u *upload) Complete(ctx context.Context, n int, opts store.PutOptions) (store.Object, error) {
	u.mu.Lock()
	parts := make([]types.CompletedPart, 0, n)
	var size int64
	for i := 1; i <= n; i++ {
		p, ok := u.parts[i]
		if !ok {
			u.mu.Unlock()
			return store.Object{}, fmt.Errorf("s3 CompleteMultipartUpload %s/%s: part %d was never sent", u.bucket, u.key, i)
		}
		parts = append(parts, p)
		size += u.sizes[i]
	}
	u.mu.Unlock()
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	in := &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.bucket),
		Key:             aws.String(u.key),
		UploadId:        u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	conditions(opts, &in.IfNoneMatch, &in.IfMatch)
	done, err := u.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return store.Object{}, convertPut("CompleteMultipartUpload", u.bucket, u.key, err, opts)
	}
	return store.Object{Key: u.key, Size: size, ETag: unquote(aws.ToString(done.ETag))}, nil
}

func (u *upload) Abort(ctx context.Context) error {
	_, err := u.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: u.id,
	})
	if err != nil {
		err = convert("AbortMultipartUpload", u.bucket, u.key, err)
		u.s.log.Warn("abort multipart upload failed; parts may linger until a lifecycle rule removes them",
			"bucket", u.bucket, "key", u.key, "err", err)
	}
	return err
}
