package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/bucketfs/bucketfs/store"
)

// What unlink, rmdir and rename ask the delete guard (deleteguard.go).

// guarded reports whether deletes are checked (no --allow-delete).
func (f *FS) guarded() bool { return !f.deletes.allow }

// deletable is the guard's check before op deletes the object key from
// bucket: it returns the object as the server has it now (Key "" when
// there is none, so nothing is to be deleted), or EPERM when the mount did
// not write it or someone replaced it since. Objects the mount does not
// remember cost no request; for the others one HEAD gives the current
// ETag, which a rename then pins its copy to.
func (f *FS) deletable(ctx context.Context, op, bucket, key string) (store.Object, syscall.Errno) {
	g := f.deletes
	if !g.mine(bucket, key) {
		g.refuse(op, bucket, key, "not written by this mount")
		return store.Object{}, syscall.EPERM
	}
	st, ok := f.cfg.Writer.(store.ObjectStore)
	if !ok {
		g.refuse(op, bucket, key, "the store cannot say what the object is now")
		return store.Object{}, syscall.EPERM
	}
	rctx, cancel := f.requestContext(ctx)
	defer cancel()
	o, err := st.Stat(rctx, bucket, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Object{}, 0
	case err != nil:
		return store.Object{}, f.fail(op, bucket, key, err)
	}
	o.Key = key
	if !g.mayDelete(bucket, key, o.ETag) {
		g.refuse(op, bucket, key, "replaced by another writer since this mount wrote it")
		return store.Object{}, syscall.EPERM
	}
	return o, 0
}

// listedDeletable is deletable for an object just listed: its ETag is
// the listing's, and no request is sent.
func (f *FS) listedDeletable(op, bucket string, o store.Object) syscall.Errno {
	if f.deletes.mayDelete(bucket, o.Key, o.ETag) {
		return 0
	}
	why := "not written by this mount"
	if f.deletes.mine(bucket, o.Key) {
		why = "replaced by another writer since this mount wrote it"
	}
	f.deletes.refuse(op, bucket, o.Key, why)
	return syscall.EPERM
}
