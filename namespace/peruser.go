package namespace

import (
	"context"
	"fmt"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
)

// One mount, many identities (cache.Config.Scope): the kernel shares one
// inode, and one page cache, between every user who reaches the same
// version of an object, and the cache shares its blocks. What makes that
// safe is this check at every open: the opener's own identity must show
// the very version the inode is (its own listing or HEAD, cached for that
// identity for the metadata TTL). Only then are the shared blocks and
// pages served to it.

// checkVersion checks, on a cache kept per identity, that the identity of
// ctx sees f's version of the object: nil, or the store's answer
// (store.ErrAccessDenied, store.ErrNotFound), or store.ErrChanged when it
// sees another version (a fresh lookup finds that one).
func (f *File) checkVersion(ctx context.Context) error {
	if !f.ns.cache.Scoped() {
		return nil
	}
	rctx, cancel := f.ns.requestContext(ctx)
	defer cancel()
	n, err := f.ns.cache.Lookup(rctx, f.bucket, f.key)
	switch {
	case err != nil:
		return err
	case !n.Kind.Has(cache.KindFile):
		return fmt.Errorf("%s/%s: %w", f.bucket, f.key, store.ErrNotFound)
	case FileIno(f.bucket, n.Object) != f.ino:
		return fmt.Errorf("%s/%s: %w", f.bucket, f.key, store.ErrChanged)
	}
	return nil
}
