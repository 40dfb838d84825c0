package namespace

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

// The root of every bucket lists each bucket as its root directory,
// fetched once (Rewind replays the list), finds buckets by name, and
// makes, removes and renames none.
func TestEveryBucket(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	e.ns.cfg.Reserved = ".bucketfs"
	for _, name := range []string{"zz-last", "a.bucket"} {
		if err := e.mem.CreateBucket(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	root := e.ns.Root("", "")
	if root.Ino() != 1 {
		t.Errorf("ino = %d, want 1", root.Ino())
	}
	l := root.List()
	walk := func() string {
		var got []string
		for {
			en, ok, err := l.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return strings.Join(got, " ")
			}
			if en.File != nil || en.Dir == nil || en.Dir.Bucket() != en.Name || en.Dir.Prefix() != "" ||
				en.Ino() != Ino(en.Name, "", true) {
				t.Errorf("%s: %+v is not the bucket's root directory", en.Name, en)
			}
			got = append(got, en.Name)
		}
	}
	if got := walk(); got != "a.bucket b zz-last" {
		t.Errorf("buckets = %q", got)
	}
	if err := e.mem.CreateBucket(ctx, "new-one"); err != nil {
		t.Fatal(err)
	}
	l.Rewind()
	if got := walk(); got != "a.bucket b zz-last" {
		t.Errorf("after Rewind = %q, want the same list", got)
	}
	if en, err := root.Lookup(ctx, "zz-last"); err != nil || en.Dir == nil || en.Dir.Bucket() != "zz-last" {
		t.Errorf("lookup zz-last = %+v, %v", en, err)
	}
	if _, err := root.Lookup(ctx, "no-such-bucket"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lookup of a missing bucket: %v", err)
	}

	bucket := e.ns.Dir(bkt, "")
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"create", func() error { _, _, err := root.Create(ctx, "f", 0); return err }, ErrReadOnly},
		{"mkdir", func() error { _, err := root.Mkdir(ctx, "new-bucket"); return err }, ErrNotSupported},
		{"unlink", func() error { return root.Unlink(ctx, "zz-last") }, ErrNotSupported},
		{"rmdir", func() error { return root.Rmdir(ctx, "zz-last") }, ErrNotSupported},
		{"rmdir reserved", func() error { return root.Rmdir(ctx, ".bucketfs") }, ErrNotPermitted},
		{"setattr", root.SetTimes, ErrNotSupported},
		{"rename a bucket", func() error { _, err := root.Rename(ctx, "zz-last", root, "zz", false, Entry{}); return err }, ErrNotSupported},
		{"rename onto reserved", func() error { _, err := root.Rename(ctx, "zz-last", root, ".bucketfs", false, Entry{}); return err }, ErrNotPermitted},
		{"rename into a bucket", func() error { _, err := root.Rename(ctx, "zz-last", bucket, "x", false, Entry{}); return err }, ErrNotSupported},
		{"rename out of a bucket", func() error { _, err := bucket.Rename(ctx, "file.txt", root, "x", false, Entry{}); return err }, ErrCrossDevice},
		{"rename out onto reserved", func() error { _, err := bucket.Rename(ctx, "file.txt", root, ".bucketfs", false, Entry{}); return err }, ErrNotPermitted},
	} {
		if err := tc.do(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got, ok := e.object("file.txt"); !ok || got != seed["file.txt"] {
		t.Errorf("file.txt after the refusals = %q, %v", got, ok)
	}

	f := newEnv(t, false)
	f.failOn("ListBuckets", "*", -1, store.ErrAccessDenied)
	if _, _, err := f.ns.Root("", "").List().Next(ctx); !errors.Is(err, store.ErrAccessDenied) {
		t.Errorf("listing with the bucket list refused: %v", err)
	}
}
