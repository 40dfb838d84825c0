package cache

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/bucketfs/bucketfs/store"
)

// Writer returns the cache's store as a store.Writer that keeps the cache
// true by itself: every object it stores or copies, every object or
// directory marker ("key/") it deletes, is recorded in the metadata and
// listings as the call returns, so a file is listed and readable with its
// new content right after, and a deleted one is gone, without asking the
// server. ok is false when the store cannot write. Every write of the
// mount goes through it (stage uploads included); nothing else records
// writes in the cache.
func (c *Cache) Writer() (w store.Writer, ok bool) {
	sw, ok := c.store.(store.Writer)
	if !ok {
		return nil, false
	}
	return &Keeper{c: c, w: sw}, true
}

// Keeps returns w kept by c: w itself when it is c's Writer already, else w
// wrapped so that its writes keep c true.
func (c *Cache) Keeps(w store.Writer) *Keeper {
	if k, ok := w.(*Keeper); ok && k.c == c {
		return k
	}
	return &Keeper{c: c, w: w}
}

// Keeper is the store.Writer decorator of Cache.Writer.
type Keeper struct {
	c *Cache
	w store.Writer
}

// Tree runs op, a change of whole directories made of many writes through
// k (a directory renamed object by object; nil: none, as for a directory
// that held nothing), then forgets what the cache knew of the directories
// dirs of bucket (no trailing "/"), everything below them and the listings
// that hold them, whatever op returned: each write kept its object true,
// but whether a directory still exists is not one object's to say, so the
// server answers next.
func (k *Keeper) Tree(bucket string, op func() error, dirs ...string) error {
	var err error
	if op != nil {
		err = op()
	}
	for _, d := range dirs {
		k.c.forgetTree(bucket, d)
	}
	return err
}

// stored records what a successful write of key left; a refused
// conditional write (someone else's object is there) makes the cache
// forget the key, so the next lookup asks.
func (k *Keeper) stored(ctx context.Context, bucket, key string, o store.Object, err error) {
	m, merr := k.c.metaFor(ctx)
	switch {
	case merr != nil && err == nil:
		// Cannot happen: the write itself needed the identity. Forget
		// rather than record for nobody.
		k.c.Forget(bucket, strings.TrimSuffix(key, "/"))
	case err == nil && strings.HasSuffix(key, "/"):
		k.c.madeDir(m, bucket, strings.TrimSuffix(key, "/"))
	case err == nil:
		o.Key = key
		k.c.wrote(m, bucket, o)
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrChanged):
		k.c.Forget(bucket, key)
	}
}

func (k *Keeper) CreateBucket(ctx context.Context, bucket string) error {
	return k.w.CreateBucket(ctx, bucket)
}

func (k *Keeper) PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	o, err := k.w.PutIf(ctx, bucket, key, body, size, opts)
	k.stored(ctx, bucket, key, o, err)
	return o, err
}

func (k *Keeper) Delete(ctx context.Context, bucket, key string) error {
	err := k.w.Delete(ctx, bucket, key)
	if err != nil {
		return err
	}
	m, merr := k.c.metaFor(ctx)
	switch {
	case merr != nil:
		k.c.Forget(bucket, strings.TrimSuffix(key, "/"))
	case strings.HasSuffix(key, "/"):
		k.c.removedDir(m, bucket, strings.TrimSuffix(key, "/"))
	default:
		k.c.removed(m, bucket, key)
	}
	return nil
}

func (k *Keeper) Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (store.Object, error) {
	o, err := k.w.Copy(ctx, bucket, srcKey, srcETag, dstKey)
	if err == nil {
		k.stored(ctx, bucket, dstKey, o, nil)
	}
	return o, err
}

func (k *Keeper) StartUpload(ctx context.Context, bucket, key string) (store.Upload, error) {
	up, err := k.w.StartUpload(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return &keptUpload{Upload: up, k: k, bucket: bucket, key: key}, nil
}

// keptUpload records the object a multipart upload completes.
type keptUpload struct {
	store.Upload
	k           *Keeper
	bucket, key string
}

func (u *keptUpload) Complete(ctx context.Context, n int, opts store.PutOptions) (store.Object, error) {
	o, err := u.Upload.Complete(ctx, n, opts)
	u.k.stored(ctx, u.bucket, u.key, o, err)
	return o, err
}
