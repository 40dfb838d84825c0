package faultstore

import (
	"context"
	"fmt"
	"io"

	"github.com/bucketfs/bucketfs/store"
)

// writeOps are the write operations, in the order of Store.writes.
var writeOps = [...]string{OpCreateBucket, OpPut, OpDelete, OpCopy, OpStartUpload, OpPutPart, OpComplete, OpAbort, OpCopyPart}

func (s *Store) writer(op, bucket, key string) (store.Writer, error) {
	w, ok := s.inner.(store.Writer)
	if !ok {
		return nil, fmt.Errorf("faultstore %s %s/%s: inner store cannot write: %w", op, bucket, key, store.ErrUnsupported)
	}
	return w, nil
}

// CreateBucket counts, runs the hook, then calls the inner store.
func (s *Store) CreateBucket(ctx context.Context, bucket string) error {
	if err := s.before(ctx, OpCreateBucket, bucket, ""); err != nil {
		return err
	}
	w, err := s.writer(OpCreateBucket, bucket, "")
	if err != nil {
		return err
	}
	return w.CreateBucket(ctx, bucket)
}

// PutIf counts and hooks as OpPut.
func (s *Store) PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	if err := s.before(ctx, OpPut, bucket, key); err != nil {
		return store.Object{}, err
	}
	w, err := s.writer(OpPut, bucket, key)
	if err != nil {
		return store.Object{}, err
	}
	return w.PutIf(ctx, bucket, key, body, size, opts)
}

// Delete counts, runs the hook, then calls the inner store.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	if err := s.before(ctx, OpDelete, bucket, key); err != nil {
		return err
	}
	w, err := s.writer(OpDelete, bucket, key)
	if err != nil {
		return err
	}
	return w.Delete(ctx, bucket, key)
}

// Copy counts and hooks with the destination key.
func (s *Store) Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (store.Object, error) {
	if err := s.before(ctx, OpCopy, bucket, dstKey); err != nil {
		return store.Object{}, err
	}
	w, err := s.writer(OpCopy, bucket, dstKey)
	if err != nil {
		return store.Object{}, err
	}
	return w.Copy(ctx, bucket, srcKey, srcETag, dstKey)
}

// StartUpload counts and hooks; the returned upload counts and hooks its
// parts (OpPutPart), completion (OpComplete) and abort (OpAbort) too.
func (s *Store) StartUpload(ctx context.Context, bucket, key string) (store.Upload, error) {
	if err := s.before(ctx, OpStartUpload, bucket, key); err != nil {
		return nil, err
	}
	w, err := s.writer(OpStartUpload, bucket, key)
	if err != nil {
		return nil, err
	}
	u, err := w.StartUpload(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return &upload{s: s, inner: u, bucket: bucket, key: key}, nil
}

type upload struct {
	s           *Store
	inner       store.Upload
	bucket, key string
}

func (u *upload) PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error {
	if err := u.s.before(ctx, OpPutPart, u.bucket, u.key); err != nil {
		return err
	}
	return u.inner.PutPart(ctx, num, body, size)
}

func (u *upload) CopyPart(ctx context.Context, num int, srcKey, srcETag string, off, size int64) error {
	if err := u.s.before(ctx, OpCopyPart, u.bucket, u.key); err != nil {
		return err
	}
	return u.inner.CopyPart(ctx, num, srcKey, srcETag, off, size)
}

func (u *upload) Complete(ctx context.Context, n int, opts store.PutOptions) (store.Object, error) {
	if err := u.s.before(ctx, OpComplete, u.bucket, u.key); err != nil {
		return store.Object{}, err
	}
	return u.inner.Complete(ctx, n, opts)
}

func (u *upload) Abort(ctx context.Context) error {
	if err := u.s.before(ctx, OpAbort, u.bucket, u.key); err != nil {
		return err
	}
	return u.inner.Abort(ctx)
}
