package fusefs

// Objects that change while a file is open, served by the in-memory store:
// every byte read belongs to the version that was opened, or the read fails
// with ESTALE; a new open sees the new object.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/memstore"
)

const changingTTL = time.Second

func init() {
	seed := func(ctx context.Context, mem *memstore.Store) error { return mem.CreateBucket(ctx, "chg") }
	wrap := func(mem *memstore.Store) store.ObjectStore { return multipartETags{mem} }
	// A cache far smaller than the objects: reads after a change go to the
	// store, pinned to the old ETag, and must fail rather than return new
	// bytes.
	scenarios["changing-small"] = scenario{seed: seed, wrap: wrap, cache: cache.Config{
		BlockSize: 64 << 10, DataBytes: 256 << 10, MetadataTTL: changingTTL}}
	// The default cache: old bytes may keep coming from it.
	scenarios["changing-big"] = scenario{seed: seed, wrap: wrap, cache: cache.Config{MetadataTTL: changingTTL}}
}

// multipartETags presents the ETags of keys under "mp/" as a multipart
// upload's ("MD5-N"), as S3 does for objects uploaded in parts, and takes
// them back in If-Match.
type multipartETags struct{ *memstore.Store }

const mpSuffix = "-3"

func isMP(key string) bool { return strings.HasPrefix(key, "mp/") }

func (m multipartETags) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	p, err := m.Store.List(ctx, in)
	for i, o := range p.Objects {
		if isMP(o.Key) {
			p.Objects[i].ETag += mpSuffix
		}
	}
	return p, err
}

func (m multipartETags) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	o, err := m.Store.Stat(ctx, bucket, key)
	if err == nil && isMP(key) {
		o.ETag += mpSuffix
	}
	return o, err
}

func (m multipartETags) pin(key, etag string) string {
	if isMP(key) && etag != "" {
		if !strings.HasSuffix(etag, mpSuffix) {
			return "not-a-multipart-etag" // fails If-Match, as S3 would
		}
		return strings.TrimSuffix(etag, mpSuffix)
	}
	return etag
}

func (m multipartETags) ReadAt(ctx context.Context, bucket, key, etag string, p []byte, off int64) (int, error) {
	return m.Store.ReadAt(ctx, bucket, key, m.pin(key, etag), p, off)
}

func (m multipartETags) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	return m.Store.ReadRange(ctx, bucket, key, m.pin(key, etag), off, n)
}

// changeCase is one change made to an object while it is open.
type changeCase struct {
	name    string
	key     string
	size    int
	newSize int // -1: the object is deleted
}

var changeCases = []changeCase{
	{"overwrite same size", "same.bin", 2 << 20, 2 << 20},
	{"replace larger", "grow.bin", 1 << 20, 3 << 20},
	{"replace smaller", "shrink.bin", 2 << 20, 300 << 10},
	{"delete", "gone.bin", 2 << 20, -1},
	{"multipart ETag overwrite", "mp/obj.bin", 2 << 20, 2 << 20},
	{"multipart ETag replace smaller", "mp/small.bin", 2 << 20, 100 << 10},
}

func TestChangingObjects(t *testing.T) {
	for _, sc := range []string{"changing-small", "changing-big"} {
		t.Run(sc, func(t *testing.T) {
			c := mountScenario(t, sc)
			for i, tc := range changeCases {
				t.Run(tc.name, func(t *testing.T) {
					stale := changeWhileOpen(t, c, tc, uint64(10*i+1))
					if sc == "changing-small" && stale == 0 {
						t.Errorf("no read failed with ESTALE although the cache cannot hold the old version")
					}
				})
			}
		})
	}
}

// changeWhileOpen opens tc.key, changes it, reads on through the open
// descriptor and then opens it anew. It returns how many reads of the old
// descriptor failed with ESTALE.
func changeWhileOpen(t *testing.T, c *child, tc changeCase, seed uint64) (stale int) {
	const chunk = 64 << 10
	oldData := pseudoRandom(seed, tc.size)
	c.do(t, "put chg %q %d %d", tc.key, seed, tc.size)
	p := filepath.Join(c.mp, "chg", filepath.FromSlash(tc.key))
	// A new key in a directory listed before shows up within the TTL.
	f, err := os.Open(p)
	for deadline := time.Now().Add(3 * changingTTL); errors.Is(err, syscall.ENOENT) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		f, err = os.Open(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, chunk)
	if n, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf[:n], oldData[:chunk]) {
		t.Fatalf("first read: %d bytes, %v", n, err)
	}

	var newData []byte
	if tc.newSize < 0 {
		c.do(t, "delete chg %q", tc.key)
	} else {
		newData = pseudoRandom(seed+1, tc.newSize)
		c.do(t, "put chg %q %d %d", tc.key, seed+1, tc.newSize)
	}

	// The rest of the old descriptor, then its start again.
	var offsets []int64
	for off := int64(chunk); off < int64(tc.size); off += chunk {
		offsets = append(offsets, off)
	}
	offsets = append(offsets, 0)
	for _, off := range offsets {
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			if !errors.Is(err, syscall.ESTALE) {
				t.Errorf("read at %d of the old descriptor: %v, want old bytes or ESTALE", off, err)
			}
			stale++
			continue
		}
		want := oldData[off:min(off+chunk, int64(tc.size))]
		got := buf[:n]
		switch {
		case bytes.Equal(got, want):
		case newData != nil && off < int64(len(newData)) && bytes.Equal(got, newData[off:min(off+int64(n), int64(len(newData)))]):
			t.Errorf("read at %d of the old descriptor returned bytes of the new version", off)
		default:
			t.Errorf("read at %d of the old descriptor: %d bytes that are not the old version's %d", off, n, len(want))
		}
	}
	t.Logf("old descriptor: %d of %d reads ESTALE, the rest old bytes", stale, len(offsets))

	// A new open sees the new object once the metadata TTL has passed;
	// until then it sees one whole version.
	deadline := time.Now().Add(5*changingTTL + 2*time.Second)
	for {
		got, err := os.ReadFile(p)
		switch {
		case tc.newSize < 0 && errors.Is(err, syscall.ENOENT):
			return stale
		case err == nil && newData != nil && bytes.Equal(got, newData):
			return stale
		case err == nil && bytes.Equal(got, oldData):
		case err != nil && errors.Is(err, syscall.ESTALE):
		case err != nil:
			t.Fatalf("new open: %v", err)
		default:
			t.Fatalf("new open read %d bytes that are neither version (a prefix of the new one: %v)", len(got), newData != nil && bytes.HasPrefix(newData, got))
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new open does not see the change %v after it (metadata TTL %v): %v", 5*changingTTL+2*time.Second, changingTTL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
