package metered

import (
	"context"
	"io"

	"github.com/bucketfs/bucketfs/store"
)

// CreateBucket is metered as create_bucket.
func (s *WriteStore) CreateBucket(ctx context.Context, bucket string) error {
	ctx, c := s.begin(ctx, OpCreateBucket, bucket, "")
	err := s.w.CreateBucket(ctx, bucket)
	c.end(err)
	return err
}

// PutIf is metered as put; size counts as written when it succeeds.
func (s *WriteStore) PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	ctx, c := s.begin(ctx, OpPut, bucket, key)
	o, err := s.w.PutIf(ctx, bucket, key, body, size, opts)
	s.written(err, size)
	c.end(err)
	return o, err
}

// Delete is metered as delete.
func (s *WriteStore) Delete(ctx context.Context, bucket, key string) error {
	ctx, c := s.begin(ctx, OpDelete, bucket, key)
	err := s.w.Delete(ctx, bucket, key)
	c.end(err)
	return err
}

// Copy is metered as copy; the key of a failure line is the destination.
// The bytes copied stay on the server and are not counted.
func (s *WriteStore) Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (store.Object, error) {
	ctx, c := s.begin(ctx, OpCopy, bucket, dstKey)
	o, err := s.w.Copy(ctx, bucket, srcKey, srcETag, dstKey)
	c.end(err)
	return o, err
}

// StartUpload is metered as start_upload; the Upload it returns meters its
// parts, completion and abort.
func (s *WriteStore) StartUpload(ctx context.Context, bucket, key string) (store.Upload, error) {
	ctx, c := s.begin(ctx, OpStartUpload, bucket, key)
	up, err := s.w.StartUpload(ctx, bucket, key)
	c.end(err)
	if err != nil {
		return up, err
	}
	return &upload{up: up, s: s.Store, bucket: bucket, key: key}, nil
}

func (s *Store) written(err error, size int64) {
	if err == nil {
		s.obs.AddBytesWritten(size)
	}
}

// upload is a metered store.Upload.
type upload struct {
	up          store.Upload
	s           *Store
	bucket, key string
}

// CopyPart is metered as copy_part; the bytes stay on the server and are
// not counted.
func (u *upload) CopyPart(ctx context.Context, num int, srcKey, srcETag string, off, size int64) error {
	ctx, c := u.s.begin(ctx, OpCopyPart, u.bucket, u.key)
	err := u.up.CopyPart(ctx, num, srcKey, srcETag, off, size)
	c.end(err)
	return err
}

func (u *upload) PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error {
	ctx, c := u.s.begin(ctx, OpPutPart, u.bucket, u.key)
	err := u.up.PutPart(ctx, num, body, size)
	u.s.written(err, size)
	c.end(err)
	return err
}

func (u *upload) Complete(ctx context.Context, n int, opts store.PutOptions) (store.Object, error) {
	ctx, c := u.s.begin(ctx, OpCompleteUpload, u.bucket, u.key)
	o, err := u.up.Complete(ctx, n, opts)
	c.end(err)
	return o, err
}

func (u *upload) Abort(ctx context.Context) error {
	ctx, c := u.s.begin(ctx, OpAbortUpload, u.bucket, u.key)
	err := u.up.Abort(ctx)
	c.end(err)
	return err
}
