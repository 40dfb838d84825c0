package namespace

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

// The walk of the buckets: each usable bucket a directory of its own,
// fetched once; Rewind replays the same list; a failure to list is the
// caller's error.
func TestListBuckets(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	for _, name := range []string{"zz-last", "a.bucket"} {
		if err := e.mem.CreateBucket(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	l, err := e.ns.ListBuckets(ctx)
	if err != nil {
		t.Fatal(err)
	}
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

	f := newEnv(t, false)
	f.failOn("ListBuckets", "*", -1, store.ErrAccessDenied)
	if _, err := f.ns.ListBuckets(ctx); !errors.Is(err, store.ErrAccessDenied) {
		t.Errorf("ListBuckets with the listing refused: %v", err)
	}
}
