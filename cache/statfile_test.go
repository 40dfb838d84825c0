package cache

import (
	"context"
	"fmt"

	"github.com/bucketfs/bucketfs/store"
)

// statFile returns the metadata of the object key, from the cache (its
// record, or its directory's listing) when fresh, else from one
// HeadObject: how tests get an object to open.
func (c *Cache) statFile(ctx context.Context, bucket, key string) (store.Object, error) {
	m := c.meta
	e, ok := m.getObj(bucket, key)
	if !ok {
		prefix := parentPrefix(key)
		if l := m.relisted(ctx, bucket, prefix); l != nil {
			kind, obj := l.find(key[len(prefix):])
			if !kind.Has(KindFile) {
				return store.Object{}, fmt.Errorf("%s/%s: %w", bucket, key, store.ErrNotFound)
			}
			return obj, nil
		}
		var err error
		if e, err = m.head(ctx, bucket, key); err != nil {
			return store.Object{}, err
		}
	}
	if !e.exists {
		return store.Object{}, fmt.Errorf("%s/%s: %w", bucket, key, store.ErrNotFound)
	}
	return e.obj, nil
}
