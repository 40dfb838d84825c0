package identity

import (
	"context"
	"io"
	"sync"

	"github.com/bucketfs/bucketfs/store"
)

// Backend is what Router signs requests with: one store per principal.
type Backend interface {
	store.ObjectStore
	store.Writer
}

// Router is the store of a per-user mount: every request goes to the store
// of its caller's principal (made on first use by the factory, e.g. an S3
// store over the principal's credentials), and a request without an
// identity fails with ErrNoIdentity (EACCES) before anything is sent.
type Router struct {
	set  *Set
	make func(p *Principal) Backend

	mu     sync.Mutex
	stores map[*Principal]Backend
}

var (
	_ store.ObjectStore = (*Router)(nil)
	_ store.Writer      = (*Router)(nil)
)

// NewRouter returns the Router over set.
func NewRouter(set *Set, factory func(p *Principal) Backend) *Router {
	return &Router{set: set, make: factory, stores: map[*Principal]Backend{}}
}

// For returns the store of the caller of ctx.
func (r *Router) For(ctx context.Context) (Backend, error) {
	p, err := r.set.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.stores[p]
	if b == nil {
		b = r.make(p)
		r.stores[p] = b
	}
	return b, nil
}

func (r *Router) ListBuckets(ctx context.Context) ([]store.Bucket, error) {
	b, err := r.For(ctx)
	if err != nil {
		return nil, err
	}
	return b.ListBuckets(ctx)
}

func (r *Router) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	b, err := r.For(ctx)
	if err != nil {
		return store.ListPage{}, err
	}
	return b.List(ctx, in)
}

func (r *Router) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	b, err := r.For(ctx)
	if err != nil {
		return store.Object{}, err
	}
	return b.Stat(ctx, bucket, key)
}

func (r *Router) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	b, err := r.For(ctx)
	if err != nil {
		return nil, err
	}
	return b.ReadRange(ctx, bucket, key, etag, off, n)
}

func (r *Router) CreateBucket(ctx context.Context, bucket string) error {
	b, err := r.For(ctx)
	if err != nil {
		return err
	}
	return b.CreateBucket(ctx, bucket)
}

func (r *Router) PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	b, err := r.For(ctx)
	if err != nil {
		return store.Object{}, err
	}
	return b.PutIf(ctx, bucket, key, body, size, opts)
}

func (r *Router) Delete(ctx context.Context, bucket, key string) error {
	b, err := r.For(ctx)
	if err != nil {
		return err
	}
	return b.Delete(ctx, bucket, key)
}

func (r *Router) Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (store.Object, error) {
	b, err := r.For(ctx)
	if err != nil {
		return store.Object{}, err
	}
	return b.Copy(ctx, bucket, srcKey, srcETag, dstKey)
}

// StartUpload starts the upload with the caller's store; its parts and
// completion are signed by that same principal, whoever sends them.
func (r *Router) StartUpload(ctx context.Context, bucket, key string) (store.Upload, error) {
	b, err := r.For(ctx)
	if err != nil {
		return nil, err
	}
	return b.StartUpload(ctx, bucket, key)
}
