package s3

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketfs/bucketfs/store"
)

const (
	// multipartThreshold is the size above which Put uploads in parts.
	multipartThreshold = 16 << 20
	// minPartSize is the part size unless the object needs bigger parts to
	// stay within S3's limit of store.MaxParts.
	minPartSize = 8 << 20
	// partConcurrency bounds parts in flight. Each streams from body, so
	// memory stays small; S3 caps each connection's throughput, so one
	// upload needs many connections to fill a host's link.
	partConcurrency = 16
	// abortTimeout bounds the cleanup after a failed multipart upload,
	// which runs even when the caller's context is already canceled.
	abortTimeout = 30 * time.Second
)

// Put stores size bytes of body under key: one PutObject up to 16 MiB,
// above that a multipart upload with parts sent in parallel. A failed
// multipart upload is aborted so no parts linger. The returned Object has
// no ModTime: S3 does not send it in upload responses.
func (s *Store) Put(ctx context.Context, bucket, key string, body io.ReaderAt, size int64) (store.Object, error) {
	return s.PutIf(ctx, bucket, key, body, size, store.PutOptions{})
}

// PutIf is Put with If-None-Match: * (opts.IfAbsent) or If-Match
// (opts.IfMatch) on the PutObject, or on the CompleteMultipartUpload of a
// large object.
func (s *Store) PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	if size < 0 {
		return store.Object{}, fmt.Errorf("s3 Put %s/%s: negative size %d", bucket, key, size)
	}
	if size > multipartThreshold {
		return s.putMultipart(ctx, bucket, key, body, size, opts)
	}
	var resp *awss3.PutObjectOutput
	err := s.call(ctx, bucket, func(c *awss3.Client) (err error) {
		in := &awss3.PutObjectInput{
			Bucket:        aws.String(bucket),
			Key:           aws.String(key),
			Body:          io.NewSectionReader(body, 0, size),
			ContentLength: aws.Int64(size),
		}
		conditions(opts, &in.IfNoneMatch, &in.IfMatch)
		resp, err = c.PutObject(ctx, in)
		return err
	})
	if err != nil {
		if o, serr := s.settleConditional(ctx, bucket, key, body, size, opts, err); serr == nil {
			return o, nil
		} else if serr != err {
			return store.Object{}, serr
		}
		return store.Object{}, convertPut("Put", bucket, key, err, opts)
	}
	return store.Object{Key: key, Size: size, ETag: unquote(aws.ToString(resp.ETag))}, nil
}

// settleConditional decides a conditional PutObject that ended without an
// answer from the server (the connection broke, on every attempt). A
// server may refuse a condition before it has read the body and close the
// connection while the body is still being sent; the client then sees the
// reset, not the refusal (versitygw does this to If-None-Match). So the
// object is looked at. If it now holds exactly these bytes (ETag = MD5, as
// S3 sets it for a single PutObject) the put happened: nil error. (An
// object with the same bytes already there counts too: the name holds what
// was written.) Otherwise for IfAbsent another object there means
// ErrExists, and for IfMatch an object with another ETag, or none, means
// ErrChanged. When nothing can be told (the key is free, or the old
// version is still there) err comes back as it was.
//
// A refusal (412) is looked at too: the SDK retries a PUT whose answer
// was lost, and when the lost attempt had landed, the retry finds the
// condition broken by the very bytes it carries. If the object holds
// exactly these bytes the put happened; otherwise the refusal stands.
func (s *Store) settleConditional(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions, err error) (store.Object, error) {
	if !opts.IfAbsent && opts.IfMatch == "" {
		return store.Object{}, err
	}
	code, status := errCode(err)
	refused := code == "PreconditionFailed" || status == 412
	if (code != "" || status != 0) && !refused || ctx.Err() != nil {
		return store.Object{}, err // the server answered otherwise, or the caller gave up
	}
	cur, serr := s.Stat(ctx, bucket, key)
	if refused {
		if serr == nil && holds(cur, body, size) {
			return store.Object{Key: key, Size: size, ETag: cur.ETag}, nil
		}
		return store.Object{}, err
	}
	switch {
	case errors.Is(serr, store.ErrNotFound) && opts.IfMatch != "":
		return store.Object{}, fmt.Errorf("s3 Put %s/%s: the object is gone (after the write broke off: %v): %w", bucket, key, err, store.ErrChanged)
	case serr != nil:
		return store.Object{}, err
	}
	if holds(cur, body, size) {
		return store.Object{Key: key, Size: size, ETag: cur.ETag}, nil
	}
	switch {
	case opts.IfAbsent:
		return store.Object{}, fmt.Errorf("s3 Put %s/%s: another object has the key (the server broke off the write): %w", bucket, key, store.ErrExists)
	case cur.ETag != opts.IfMatch:
		return store.Object{}, fmt.Errorf("s3 Put %s/%s: the object has ETag %s, not %s (the server broke off the write): %w", bucket, key, cur.ETag, opts.IfMatch, store.ErrChanged)
	}
	return store.Object{}, err
}

// holds reports whether cur has exactly the size bytes of body, by the
// ETag S3 gives a single PutObject (the MD5 of the bytes).
func holds(cur store.Object, body io.ReaderAt, size int64) bool {
	if cur.Size != size {
		return false
	}
	h := md5.New()
	_, err := io.Copy(h, io.NewSectionReader(body, 0, size))
	return err == nil && cur.ETag == hex.EncodeToString(h.Sum(nil))
}

// conditions sets the If-None-Match and If-Match headers of a request.
func conditions(opts store.PutOptions, ifNoneMatch, ifMatch **string) {
	if opts.IfAbsent {
		*ifNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		*ifMatch = aws.String(`"` + opts.IfMatch + `"`)
	}
}

// convertPut converts the error of a conditional write. A failed
// If-None-Match is ErrExists (412, or 409 ConditionalRequestConflict when
// another upload of the key completed meanwhile); a server that does not
// implement the header answers 501, which is ErrUnsupported.
func convertPut(op, bucket, key string, err error, opts store.PutOptions) error {
	code, status := errCode(err)
	switch {
	case opts.IfAbsent && (code == "PreconditionFailed" || status == 412 || code == "ConditionalRequestConflict"):
		return fmt.Errorf("s3 %s %s/%s: %w (%s, HTTP %d)", op, bucket, key, store.ErrExists, code, status)
	case (opts.IfAbsent || opts.IfMatch != "") && (code == "NotImplemented" || status == 501):
		return fmt.Errorf("s3 %s %s/%s: conditional write: %w (%s, HTTP %d)", op, bucket, key, store.ErrUnsupported, code, status)
	}
	return convert(op, bucket, key, err)
}

func partSize(size int64) int64 {
	ps := int64(minPartSize)
	if need := (size + store.MaxParts - 1) / store.MaxParts; need > ps {
		// Round up to a MiB so parts stay tidy.
		ps = (need + (1<<20 - 1)) &^ (1<<20 - 1)
	}
	return ps
}

func (s *Store) putMultipart(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (_ store.Object, err error) {
	up, err := s.StartUpload(ctx, bucket, key)
	if err != nil {
		return store.Object{}, err
	}
	defer func() {
		if err != nil {
			abortQuietly(ctx, up)
		}
	}()
	ps := partSize(size)
	n := int((size + ps - 1) / ps)
	err = store.PutParts(ctx, up, partConcurrency, n, func(num int) (io.ReaderAt, int64) {
		off := int64(num-1) * ps
		return io.NewSectionReader(body, off, min(ps, size-off)), min(ps, size-off)
	})
	if err != nil {
		return store.Object{}, err
	}
	return up.Complete(ctx, n, opts)
}

// abortQuietly aborts up on a context that outlives the caller's
// cancellation; a failure is logged by Abort.
func abortQuietly(ctx context.Context, up store.Upload) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_ = up.Abort(actx)
}
