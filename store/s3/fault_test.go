package s3

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/auth"
	"github.com/bucketfs/bucketfs/internal/faultproxy"
	"github.com/bucketfs/bucketfs/store"
)

// TestFaultyServer runs the store, configured as the mount configures it
// (auth.Load: retries, budget), through a proxy that breaks 30% of the
// requests in every way it knows. Listings and HEADs come out complete and
// right (the SDK retries them, truncated bodies included); a ranged read
// returns the right bytes or an error the cache retries, never wrong bytes.
func TestFaultyServer(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	direct := newTestStore(t, endpoint, access, secret)
	reachable(t, direct, endpoint)
	bkt := newBucket(t, direct)
	ctx := t.Context()
	want := map[string][]byte{}
	for i := 0; i < 40; i++ {
		k := fmt.Sprintf("d%d/obj-%02d", i%3, i)
		want[k] = bytes.Repeat([]byte{byte(i)}, 20_000+i*997)
		if _, err := direct.Put(ctx, bkt, k, bytes.NewReader(want[k]), int64(len(want[k]))); err != nil {
			t.Fatal(err)
		}
	}

	proxy, err := faultproxy.Start(faultproxy.Config{Target: endpoint, Rate: 0.3, Seed: 6, StallFor: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	res, err := auth.Load(ctx, auth.Options{Region: "us-east-1", EndpointURL: proxy.URL()})
	if err != nil {
		t.Fatal(err)
	}
	s := New(res.Config, Options{Endpoint: res.Endpoint, PathStyle: true})

	for pass := 0; pass < 2; pass++ {
		var listed []string
		for tok := ""; ; {
			page, err := s.List(ctx, store.ListInput{Bucket: bkt, Token: tok, MaxKeys: 6})
			if err != nil {
				t.Fatalf("pass %d: List: %v", pass, err)
			}
			for _, o := range page.Objects {
				listed = append(listed, o.Key)
			}
			if tok = page.NextToken; tok == "" {
				break
			}
		}
		if len(listed) != len(want) || !sort.StringsAreSorted(listed) {
			t.Errorf("pass %d: listed %d keys, want %d in order", pass, len(listed), len(want))
		}
	}
	var readErrs int
	for k, data := range want {
		o, err := s.Stat(ctx, bkt, k)
		if err != nil || o.Size != int64(len(data)) {
			t.Errorf("Stat(%s) = %+v, %v", k, o, err)
			continue
		}
		buf := make([]byte, len(data))
		n, err := s.ReadAt(ctx, bkt, k, o.ETag, buf, 0)
		if !bytes.Equal(buf[:n], data[:n]) {
			t.Errorf("ReadAt(%s) returned wrong bytes", k)
		}
		if err != nil {
			for _, sentinel := range []error{store.ErrNotFound, store.ErrAccessDenied, store.ErrAuth, store.ErrChanged} {
				if errors.Is(err, sentinel) {
					t.Errorf("ReadAt(%s) under transient faults: %v, which the cache would not retry", k, err)
				}
			}
			readErrs++
		} else if n != len(data) {
			t.Errorf("ReadAt(%s) = %d bytes and no error, want %d", k, n, len(data))
		}
	}
	st := proxy.Stats()
	t.Logf("proxy: %v; %d of %d whole-object reads broke mid-body", st, readErrs, len(want))
	for _, k := range faultproxy.AllKinds {
		if st.Faults[k] == 0 {
			t.Errorf("no %s fault was injected; the test did not exercise it", k)
		}
	}
}

// TestTruncatedListingRetried: a listing whose body the connection cuts
// short is sent again, not failed.
func TestTruncatedListingRetried(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	direct := newTestStore(t, endpoint, access, secret)
	reachable(t, direct, endpoint)
	bkt := newBucket(t, direct)
	ctx := t.Context()
	for i := 0; i < 30; i++ {
		if _, err := direct.Put(ctx, bkt, fmt.Sprintf("k%02d", i), bytes.NewReader(nil), 0); err != nil {
			t.Fatal(err)
		}
	}
	proxy, err := faultproxy.Start(faultproxy.Config{Target: endpoint, Rate: 0.5, Seed: 1, Kinds: []faultproxy.Kind{faultproxy.Truncate},
		Match: func(r *http.Request) bool { return r.URL.Query().Get("list-type") == "2" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	res, err := auth.Load(ctx, auth.Options{Region: "us-east-1", EndpointURL: proxy.URL()})
	if err != nil {
		t.Fatal(err)
	}
	s := New(res.Config, Options{Endpoint: res.Endpoint, PathStyle: true})
	for i := 0; i < 10; i++ {
		page, err := s.List(ctx, store.ListInput{Bucket: bkt})
		if err != nil || len(page.Objects) != 30 {
			t.Errorf("List %d: %d objects, %v", i, len(page.Objects), err)
		}
	}
	if st := proxy.Stats(); st.Faults[faultproxy.Truncate] == 0 {
		t.Errorf("no listing was truncated: %v", st)
	}
}
