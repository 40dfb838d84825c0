package namespace

import (
	"context"
	"errors"

	"github.com/bucketfs/bucketfs/store"
)

// What unlink, rmdir and rename ask the delete guard (deleteguard.go).

// ErrNotPermitted is a delete the guard refused (EPERM): the object was
// not written by this mount, or was replaced since.
var ErrNotPermitted = errors.New("delete refused: not written by this mount (--allow-delete lifts the guard)")

// guarded reports whether deletes are checked (no --allow-delete).
func (ns *NS) guarded() bool { return !ns.deletes.allow }

// deletable is the guard's check before op deletes the object key from
// bucket: it returns the object as the server has it now (Key "" when
// there is none, so nothing is to be deleted), or ErrNotPermitted when the
// mount did not write it or someone replaced it since. Objects the mount
// does not remember cost no request; for the others one HEAD gives the
// current ETag, which a rename then pins its copy to.
func (ns *NS) deletable(ctx context.Context, who, op, bucket, key string) (store.Object, error) {
	g := ns.deletes
	if !g.mine(who, bucket, key) {
		g.refuse(op, bucket, key, "not written by this mount")
		return store.Object{}, ErrNotPermitted
	}
	rctx, cancel := ns.requestContext(ctx)
	defer cancel()
	o, err := ns.cache.Store().Stat(rctx, bucket, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Object{}, nil
	case err != nil:
		return store.Object{}, err
	}
	o.Key = key
	if !g.mayDelete(who, bucket, key, o.ETag) {
		g.refuse(op, bucket, key, "replaced by another writer since this mount wrote it")
		return store.Object{}, ErrNotPermitted
	}
	return o, nil
}

// who is the owner of the delete (identity.go): a user deletes only what
// they wrote, on a mount of many identities.

// listedDeletable is deletable for an object just listed: its ETag is
// the listing's, and no request is sent.
func (ns *NS) listedDeletable(who, op, bucket string, o store.Object) error {
	if ns.deletes.mayDelete(who, bucket, o.Key, o.ETag) {
		return nil
	}
	why := "not written by this mount"
	if ns.deletes.mine(who, bucket, o.Key) {
		why = "replaced by another writer since this mount wrote it"
	}
	ns.deletes.refuse(op, bucket, o.Key, why)
	return ErrNotPermitted
}
