package memstore

import (
	"bytes"
	"context"
	"io"
)

// ReadRange streams a copy of the bytes ReadAt would return.
func (s *Store) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if n <= 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	buf := make([]byte, n)
	got, err := s.ReadAt(ctx, bucket, key, etag, buf, off)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(buf[:got])), nil
}
