package memstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"

	"github.com/bucketfs/bucketfs/store"
)

// PutIf stores a copy of size bytes read from body under key if opts'
// conditions hold, as S3 checks them: IfAbsent fails with store.ErrExists
// when the key is taken, IfMatch with store.ErrChanged when the current
// object (or none) has another ETag.
func (s *Store) PutIf(ctx context.Context, bucketName, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	if key == "" {
		return store.Object{}, fmt.Errorf("memstore Put %s/: empty key", bucketName)
	}
	if size < 0 {
		return store.Object{}, fmt.Errorf("memstore Put %s/%s: negative size %d", bucketName, key, size)
	}
	// Read outside the lock: body may be slow.
	data := make([]byte, size)
	if size > 0 {
		if n, err := body.ReadAt(data, 0); n < len(data) {
			return store.Object{}, fmt.Errorf("memstore Put %s/%s: read body: %d of %d bytes: %w", bucketName, key, n, size, err)
		}
	}
	sum := md5.Sum(data)
	return s.store("Put", bucketName, key, object{data: data, etag: hex.EncodeToString(sum[:])}, opts)
}

// store installs o under key if opts' conditions hold.
func (s *Store) store(op, bucketName, key string, o object, opts store.PutOptions) (store.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookup(op, bucketName, key)
	if err != nil {
		return store.Object{}, err
	}
	old, exists := b.objects[key]
	switch {
	case opts.IfAbsent && exists:
		return store.Object{}, fail(op, bucketName, key, store.ErrExists)
	case opts.IfMatch != "" && (!exists || old.etag != opts.IfMatch):
		return store.Object{}, fail(op, bucketName, key, store.ErrChanged)
	}
	o.modTime = s.now()
	if !exists {
		i := sort.SearchStrings(b.keys, key)
		b.keys = append(b.keys, "")
		copy(b.keys[i+1:], b.keys[i:])
		b.keys[i] = key
	}
	b.objects[key] = o
	return store.Object{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, ETag: o.etag}, nil
}

// Copy copies srcKey to dstKey inside one bucket, pinned to srcETag when it
// is not empty. The copy shares the source's bytes (they are never changed
// in place) and keeps its ETag, as S3 does for a copy of a single-part
// object.
func (s *Store) Copy(ctx context.Context, bucketName, srcKey, srcETag, dstKey string) (store.Object, error) {
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	if dstKey == "" {
		return store.Object{}, fmt.Errorf("memstore Copy %s/: empty key", bucketName)
	}
	s.mu.RLock()
	b, err := s.lookup("Copy", bucketName, srcKey)
	var src object
	ok := false
	if err == nil {
		src, ok = b.objects[srcKey]
	}
	s.mu.RUnlock()
	switch {
	case err != nil:
		return store.Object{}, err
	case !ok:
		return store.Object{}, fail("Copy", bucketName, srcKey, store.ErrNotFound)
	case srcETag != "" && src.etag != srcETag:
		return store.Object{}, fail("Copy", bucketName, srcKey, store.ErrChanged)
	}
	return s.store("Copy", bucketName, dstKey, object{data: src.data, etag: src.etag}, store.PutOptions{})
}

// StartUpload begins a multipart upload held in memory until Complete.
func (s *Store) StartUpload(ctx context.Context, bucketName, key string) (store.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, fmt.Errorf("memstore StartUpload %s/: empty key", bucketName)
	}
	s.mu.RLock()
	_, err := s.lookup("StartUpload", bucketName, key)
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return &upload{s: s, bucket: bucketName, key: key, parts: map[int][]byte{}}, nil
}

// upload is a multipart upload in memory.
type upload struct {
	s           *Store
	bucket, key string

	mu      sync.Mutex
	parts   map[int][]byte
	aborted bool
}

func (u *upload) PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if num < 1 || num > store.MaxParts || size < 0 || size > store.MaxPartSize {
		return fmt.Errorf("memstore PutPart %s/%s: part %d of %d bytes out of range", u.bucket, u.key, num, size)
	}
	data := make([]byte, size)
	if size > 0 {
		if n, err := body.ReadAt(data, 0); n < len(data) {
			return fmt.Errorf("memstore PutPart %s/%s: read body: %d of %d bytes: %w", u.bucket, u.key, n, size, err)
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted {
		return fail("PutPart", u.bucket, u.key, store.ErrNotFound)
	}
	u.parts[num] = data
	return nil
}

// CopyPart copies the part from the stored object srcKey.
func (u *upload) CopyPart(ctx context.Context, num int, srcKey, srcETag string, off, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if num < 1 || num > store.MaxParts || size < 0 || size > store.MaxPartSize || off < 0 {
		return fmt.Errorf("memstore CopyPart %s/%s: part %d of %d bytes at %d out of range", u.bucket, u.key, num, size, off)
	}
	u.s.mu.RLock()
	b, err := u.s.lookup("CopyPart", u.bucket, srcKey)
	var src object
	ok := false
	if err == nil {
		src, ok = b.objects[srcKey]
	}
	u.s.mu.RUnlock()
	switch {
	case err != nil:
		return err
	case !ok:
		return fail("CopyPart", u.bucket, srcKey, store.ErrNotFound)
	case srcETag != "" && src.etag != srcETag:
		return fail("CopyPart", u.bucket, srcKey, store.ErrChanged)
	case off+size > int64(len(src.data)):
		return fmt.Errorf("memstore CopyPart %s/%s: range %d+%d beyond the source's %d bytes", u.bucket, srcKey, off, size, len(src.data))
	}
	data := append([]byte(nil), src.data[off:off+size]...)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.aborted {
		return fail("CopyPart", u.bucket, u.key, store.ErrNotFound)
	}
	u.parts[num] = data
	return nil
}

func (u *upload) Complete(ctx context.Context, n int, opts store.PutOptions) (store.Object, error) {
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	u.mu.Lock()
	if u.aborted {
		u.mu.Unlock()
		return store.Object{}, fail("Complete", u.bucket, u.key, store.ErrNotFound)
	}
	var data []byte
	sums := md5.New()
	for i := 1; i <= n; i++ {
		p, ok := u.parts[i]
		switch {
		case !ok:
			u.mu.Unlock()
			return store.Object{}, fmt.Errorf("memstore Complete %s/%s: part %d was never sent", u.bucket, u.key, i)
		case i < n && len(p) < store.MinPartSize:
			u.mu.Unlock()
			return store.Object{}, fmt.Errorf("memstore Complete %s/%s: part %d is %d bytes, below the minimum", u.bucket, u.key, i, len(p))
		}
		data = append(data, p...)
		s := md5.Sum(p)
		sums.Write(s[:])
	}
	u.mu.Unlock()
	// The ETag of a multipart object, as S3 makes it: the MD5 of the
	// parts' MD5s, a dash and the number of parts.
	etag := hex.EncodeToString(sums.Sum(nil)) + "-" + strconv.Itoa(n)
	o, err := u.s.store("Complete", u.bucket, u.key, object{data: data, etag: etag}, opts)
	if err != nil {
		return store.Object{}, err
	}
	u.mu.Lock()
	u.aborted = true // done: the upload is gone, as on S3
	u.mu.Unlock()
	return o, nil
}

func (u *upload) Abort(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.aborted = true
	u.parts = nil
	return nil
}
