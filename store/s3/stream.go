package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// ReadRange streams bytes [off, off+n) of key with one ranged GET, pinned
// to etag with If-Match. The body reports io.ErrUnexpectedEOF if the
// server closes it before the length it announced.
func (s *Store) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("s3 ReadRange %s/%s: negative offset %d", bucket, key, off)
	}
	if n <= 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &awss3.GetObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	}
	if etag != "" {
		in.IfMatch = aws.String(`"` + etag + `"`)
	}
	var resp *awss3.GetObjectOutput
	err := s.call(ctx, bucket, func(c *awss3.Client) (err error) {
		resp, err = c.GetObject(ctx, in)
		return err
	})
	if err != nil {
		if isCode(err, "InvalidRange") {
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, convert("ReadRange", bucket, key, err)
	}
	// A server that ignores Range sends the whole object from byte 0.
	if start, ok := rangeStart(aws.ToString(resp.ContentRange)); (ok && start != off) || (!ok && off != 0) {
		resp.Body.Close()
		return nil, fmt.Errorf("s3 ReadRange %s/%s: asked for offset %d, server answered Content-Range %q",
			bucket, key, off, aws.ToString(resp.ContentRange))
	}
	want := n
	if resp.ContentLength != nil {
		want = min(want, *resp.ContentLength)
	}
	return &body{rc: resp.Body, left: want, what: bucket + "/" + key}, nil
}

// body passes a GET body through, turning an early end into an error and
// stopping at the length asked for even if the server sends more.
type body struct {
	rc   io.ReadCloser
	left int64
	what string
}

func (b *body) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		return n, fmt.Errorf("s3 GET %s: body ended %d bytes early: %w", b.what, b.left, io.ErrUnexpectedEOF)
	}
	if b.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
