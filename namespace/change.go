package namespace

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/bucketfs/bucketfs/store"
)

// Creating and removing names: create stages an empty file (uploaded at
// close), mkdir stores a "dir/" marker, unlink deletes the object, rmdir
// deletes the marker of an empty directory. Deletes ask the delete guard
// first (deletecheck.go).

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// checkWritable fails with ErrReadOnly on a read-only namespace.
func (ns *NS) checkWritable() error {
	if !ns.Writable() {
		return ErrReadOnly
	}
	return nil
}

// checkNewName checks a name a change would give: usable, and not one that
// shadowing reserves.
func checkNewName(name string) error {
	if !usable(name) || strings.HasSuffix(name, ShadowSuffix) {
		return ErrInvalid
	}
	return nil
}

// Create makes a new file and opens it with flags. Nothing reaches S3
// until the file is closed; then the object is created only if no other
// writer created it in the meantime (If-None-Match: *).
func (d *Dir) Create(ctx context.Context, name string, flags uint32) (*File, *Handle, error) {
	if d.control {
		return nil, nil, ErrControl
	}
	if d.bucket == "" {
		return nil, nil, ErrReadOnly
	}
	if err := d.ns.checkWritable(); err != nil {
		return nil, nil, err
	}
	if err := checkNewName(name); err != nil {
		return nil, nil, err
	}
	ctx, o, err := d.ns.caller(ctx)
	if err != nil {
		return nil, nil, err
	}
	key := d.Prefix() + name
	w := d.ns.writes.get(o.Key, d.bucket, key)
	if w == nil {
		w = &wfile{ns: d.ns, ino: d.ns.newIno(d.bucket, key), id: o, bucket: d.bucket, key: key, created: true}
		if _, err := w.stage(ctx, true); err != nil {
			return nil, nil, err
		}
		w.changed() // even an empty file is created at close
		if r := w.register(); r != w {
			w.closeHandle()
			w = r
		}
	}
	h, err := w.open(ctx, flags)
	if err != nil {
		return nil, nil, err
	}
	return d.ns.fileOf(w), h, nil
}

// Mkdir stores the marker "key/", so the directory exists while empty.
func (d *Dir) Mkdir(ctx context.Context, name string) (*Dir, error) {
	if err := d.fixed(); err != nil {
		return nil, err
	}
	if err := d.ns.checkWritable(); err != nil {
		return nil, err
	}
	if !usable(name) {
		return nil, ErrInvalid
	}
	ctx, o, err := d.ns.caller(ctx)
	if err != nil {
		return nil, err
	}
	key := d.Prefix() + name
	rctx, cancel := d.ns.requestContext(ctx)
	defer cancel()
	w := d.ns.w
	m, err := w.PutIf(rctx, d.bucket, key+"/", bytes.NewReader(nil), 0, store.PutOptions{IfAbsent: true})
	if errors.Is(err, store.ErrUnsupported) {
		m, err = store.Put(rctx, w, d.bucket, key+"/", bytes.NewReader(nil), 0)
	}
	switch {
	case errors.Is(err, store.ErrExists):
		return nil, ErrExist
	case err != nil:
		return nil, err
	}
	d.ns.deletes.wrote(o.Key, d.bucket, key+"/", m.ETag)
	return d.child(name), nil
}

// Unlink deletes the object. A file still open keeps its staged bytes
// for its readers and writers, but nothing more is uploaded.
func (d *Dir) Unlink(ctx context.Context, name string) error {
	if d.Reserved(name) {
		return ErrNotPermitted
	}
	if err := d.fixed(); err != nil {
		return err
	}
	if err := d.ns.checkWritable(); err != nil {
		return err
	}
	ctx, o, err := d.ns.caller(ctx)
	if err != nil {
		return err
	}
	key := d.fileKey(ctx, name)
	w := d.ns.writes.get(o.Key, d.bucket, key)
	neverUploaded := false
	if w != nil {
		w.mu.Lock()
		neverUploaded = w.created
		w.mu.Unlock()
	}
	gone := false
	if d.ns.guarded() && !neverUploaded {
		cur, err := d.ns.deletable(ctx, o.Key, "unlink", d.bucket, key)
		if err != nil {
			return err
		}
		gone = cur.Key == "" // nothing left to delete
	}
	if w != nil {
		w.drop()
	}
	if !neverUploaded && !gone {
		// A file created here and never uploaded has no object: the key
		// may hold another writer's, which is not ours to delete.
		rctx, cancel := d.ns.requestContext(ctx)
		defer cancel()
		if err := d.ns.w.Delete(rctx, d.bucket, key); err != nil {
			return err
		}
	}
	d.ns.deletes.removed(o.Key, d.bucket, key)
	return nil
}

// Rmdir removes an empty directory: its marker, if it has one. A
// directory with any key below it (or a file being written there) is not
// empty.
func (d *Dir) Rmdir(ctx context.Context, name string) error {
	if d.Reserved(name) {
		return ErrNotPermitted
	}
	if err := d.fixed(); err != nil {
		return err
	}
	if err := d.ns.checkWritable(); err != nil {
		return err
	}
	ctx, o, err := d.ns.caller(ctx)
	if err != nil {
		return err
	}
	key := d.Prefix() + name
	if len(d.ns.writes.under(o.Key, d.bucket, key+"/")) > 0 {
		return ErrNotEmpty
	}
	objs, _, err := d.ns.listTree(ctx, d.bucket, key+"/", 2)
	if err != nil {
		return err
	}
	var marker *store.Object
	for i, o := range objs {
		if o.Key != key+"/" {
			return ErrNotEmpty
		}
		marker = &objs[i]
	}
	if marker != nil {
		// Only the marker is left: deleting it is a delete like any other.
		if d.ns.guarded() {
			if err := d.ns.listedDeletable(o.Key, "rmdir", d.bucket, *marker); err != nil {
				return err
			}
		}
		rctx, cancel := d.ns.requestContext(ctx)
		defer cancel()
		if err := d.ns.w.Delete(rctx, d.bucket, key+"/"); err != nil {
			return err
		}
		d.ns.deletes.removed(o.Key, d.bucket, key+"/")
		return nil
	}
	// No marker, no object: the directory was only in what the cache
	// remembered; no write to make, and the writer forgets it.
	return d.ns.w.Tree(d.bucket, nil, key)
}

// SetTimes accepts a change of times or modes of d: S3 keeps none for
// prefixes, so it is ignored (touch DIR, cp -rp), on a writable mount.
func (d *Dir) SetTimes() error {
	if err := d.fixed(); err != nil {
		return err
	}
	return d.ns.checkWritable()
}
