package namespace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// One namespace, several identities (cache.Config.Scope): what the store
// lets one identity see never reaches another through the caches, and an
// open checks the opener's own right to the very version.

type whoKey struct{}

func as(name string) context.Context { return context.WithValue(context.Background(), whoKey{}, name) }

func who(ctx context.Context) (string, error) {
	if n, ok := ctx.Value(whoKey{}).(string); ok {
		return n, nil
	}
	return "", fmt.Errorf("request without a caller: %w", store.ErrAccessDenied)
}

// policyStore is S3's authorization for the test: each identity may use
// the buckets it is granted, and nothing else (as versitygw's accounts in
// the end-to-end test). It counts requests, and refuses any request
// without an identity.
type policyStore struct {
	mem    *memstore.Store
	grants map[string][]string // identity -> buckets
	calls  atomic.Int64
	gets   atomic.Int64
}

func (p *policyStore) allow(ctx context.Context, bucket string) error {
	p.calls.Add(1)
	n, err := who(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(p.grants[n], bucket) {
		return fmt.Errorf("%s on %s: %w", n, bucket, store.ErrAccessDenied)
	}
	return nil
}

func (p *policyStore) ListBuckets(ctx context.Context) ([]store.Bucket, error) {
	p.calls.Add(1)
	n, err := who(ctx)
	if err != nil {
		return nil, err
	}
	all, err := p.mem.ListBuckets(ctx)
	var out []store.Bucket
	for _, b := range all {
		if slices.Contains(p.grants[n], b.Name) {
			out = append(out, b)
		}
	}
	return out, err
}

func (p *policyStore) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	if err := p.allow(ctx, in.Bucket); err != nil {
		return store.ListPage{}, err
	}
	return p.mem.List(ctx, in)
}

func (p *policyStore) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	if err := p.allow(ctx, bucket); err != nil {
		return store.Object{}, err
	}
	return p.mem.Stat(ctx, bucket, key)
}

func (p *policyStore) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if err := p.allow(ctx, bucket); err != nil {
		return nil, err
	}
	p.gets.Add(1)
	return p.mem.ReadRange(ctx, bucket, key, etag, off, n)
}

type peruserFixture struct {
	ps *policyStore
	c  *cache.Cache
	ns *NS
}

func newPeruserFixture(t *testing.T) *peruserFixture {
	t.Helper()
	ctx := context.Background()
	mem := memstore.New()
	files := map[string]string{"bkt-a": "x.csv", "bkt-b": "secret.csv", "bkt-c": "shared.csv"}
	for b, k := range files {
		if err := mem.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
		body := bytes.Repeat([]byte(b[4:5]), 3<<20/2) // 1.5 MiB: two blocks
		if _, err := mem.Put(ctx, b, "dir/"+k, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	ps := &policyStore{mem: mem, grants: map[string][]string{"alice": {"bkt-a", "bkt-c"}, "bob": {"bkt-b", "bkt-c"}}}
	now := time.Unix(1_700_000_000, 0)
	c := cache.New(ps, cache.Config{Scope: who, Now: func() time.Time { return now }})
	t.Cleanup(c.Close)
	return &peruserFixture{ps: ps, c: c, ns: New(c, Config{})}
}

// lookup resolves bucket/dir/name as ctx's identity.
func (f *peruserFixture) lookup(ctx context.Context, bucket, name string) (Entry, error) {
	d, err := f.ns.Bucket(ctx, bucket)
	if err != nil {
		return Entry{}, err
	}
	e, err := d.Lookup(ctx, "dir")
	if err != nil {
		return Entry{}, err
	}
	return e.Dir.Lookup(ctx, name)
}

func readWhole(ctx context.Context, f *File) ([]byte, error) {
	h, err := f.Open(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer h.Release(ctx)
	var out []byte
	buf := make([]byte, 256<<10)
	for off := int64(0); ; {
		b, hold, err := h.Read(ctx, buf, off)
		out = append(out, b...)
		hold.Release()
		off += int64(len(b))
		if errors.Is(err, io.EOF) || (err == nil && len(b) == 0) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func listNames(ctx context.Context, d *Dir) ([]string, error) {
	l := d.List()
	var names []string
	for {
		e, ok, err := l.Next(ctx)
		if err != nil || !ok {
			return names, err
		}
		names = append(names, e.Name)
	}
}

func TestPerUserIsolation(t *testing.T) {
	f := newPeruserFixture(t)
	alice, bob := as("alice"), as("bob")

	// Bob reads his file: its listing, name and blocks are now cached.
	bobFile, err := f.lookup(bob, "bkt-b", "secret.csv")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := readWhole(bob, bobFile.File); err != nil || len(data) != 3<<20/2 {
		t.Fatalf("bob reads his own file: %d bytes, %v", len(data), err)
	}
	if _, err := listNames(bob, f.ns.Dir("bkt-b", "dir/")); err != nil {
		t.Fatal(err)
	}

	// Nothing of it reaches alice.
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrAccessDenied) {
			t.Errorf("%s as alice: %v, want access denied", what, err)
		}
	}
	_, err = f.ns.Bucket(alice, "bkt-b")
	denied("bucket b", err)
	_, err = f.ns.Dir("bkt-b", "dir/").Lookup(alice, "secret.csv")
	denied("lookup of b/dir/secret.csv", err)
	names, err := listNames(alice, f.ns.Dir("bkt-b", "dir/"))
	denied(fmt.Sprintf("listing b/dir/ (got %q)", names), err)
	// The kernel shares inodes between users: alice holding bob's very
	// File (same version, blocks cached) still cannot open it.
	data, err := readWhole(alice, bobFile.File)
	denied(fmt.Sprintf("open of bob's file (read %d bytes)", len(data)), err)

	// A directory handle of alice's read by bob (passed on) lists
	// nothing into alice's cache.
	cl := f.ns.Dir("bkt-c", "dir/").List()
	if _, _, err := cl.Next(alice); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Next(bob); !errors.Is(err, store.ErrAccessDenied) {
		t.Errorf("alice's directory handle read by bob: %v, want access denied", err)
	}

	// Each identity's root lists its own buckets.
	for _, tc := range []struct {
		ctx  context.Context
		want []string
	}{{alice, []string{"bkt-a", "bkt-c"}}, {bob, []string{"bkt-b", "bkt-c"}}} {
		got, err := f.ns.Buckets(tc.ctx)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("buckets of %v = %q, %v; want %q", tc.ctx.Value(whoKey{}), got, err, tc.want)
		}
	}

	// A request without an identity reaches neither cache nor store.
	before := f.ps.calls.Load()
	if _, err := f.ns.Buckets(context.Background()); !errors.Is(err, store.ErrAccessDenied) {
		t.Errorf("buckets without an identity: %v", err)
	}
	if _, err := f.ns.Dir("bkt-c", "dir/").Lookup(context.Background(), "shared.csv"); !errors.Is(err, store.ErrAccessDenied) {
		t.Errorf("lookup without an identity: %v", err)
	}
	if n := f.ps.calls.Load() - before; n != 0 {
		t.Errorf("requests without an identity sent %d store calls", n)
	}
}

func TestPerUserSharedBlocks(t *testing.T) {
	f := newPeruserFixture(t)
	gets := f.ps.gets.Load()
	for _, ctx := range []context.Context{as("alice"), as("bob")} {
		e, err := f.lookup(ctx, "bkt-c", "shared.csv")
		if err != nil {
			t.Fatal(err)
		}
		if data, err := readWhole(ctx, e.File); err != nil || len(data) != 3<<20/2 {
			t.Fatalf("read of c/dir/shared.csv as %v: %d bytes, %v", ctx.Value(whoKey{}), len(data), err)
		}
	}
	// Two blocks, at most one GET each (a run may take both): fetched
	// once for both readers.
	if n := f.ps.gets.Load() - gets; n < 1 || n > 2 {
		t.Errorf("two readers of one version sent %d GETs, want the blocks fetched once", n)
	}
	// The second reader's open asked its own identity first.
	if _, err := f.c.Lookup(as("bob"), "bkt-c", "dir/shared.csv"); err != nil {
		t.Errorf("bob's own lookup: %v", err)
	}
}
