// Package memstore is an in-memory store.ObjectStore and store.Writer with
// S3 semantics. Tests use it as the reference implementation and for keys a
// POSIX-backed S3 server refuses ("a" beside "a/b", "//", "..").
package memstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// defaultMaxKeys is what S3 uses when MaxKeys is not given.
const defaultMaxKeys = 1000

// Store is an in-memory object store. The zero value is not usable; call New.
// It is safe for concurrent use.
type Store struct {
	now func() time.Time

	mu      sync.RWMutex
	buckets map[string]*bucket
	denied  map[string]bool // kept apart from buckets so missing buckets can be denied too
}

type bucket struct {
	created time.Time
	objects map[string]object
	keys    []string // sorted (byte order) keys of objects, for listing
}

type object struct {
	data    []byte
	etag    string
	modTime time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used for bucket creation and object modification
// times, so tests can control ModTime.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns an empty Store.
func New(opts ...Option) *Store {
	s := &Store{
		now:     time.Now,
		buckets: map[string]*bucket{},
		denied:  map[string]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

var (
	_ store.ObjectStore = (*Store)(nil)
	_ store.Writer      = (*Store)(nil)
)

// SetAccessDenied makes every call on bucket fail with store.ErrAccessDenied
// (denied=true) or behave normally again (denied=false). ListBuckets still
// lists the bucket, as S3 does for a bucket the caller owns but whose policy
// denies reads.
func (s *Store) SetAccessDenied(bucket string, denied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if denied {
		s.denied[bucket] = true
	} else {
		delete(s.denied, bucket)
	}
}

func fail(op, bucket, key string, sentinel error) error {
	return fmt.Errorf("memstore %s %s/%s: %w", op, bucket, key, sentinel)
}

// lookup returns the bucket or the error S3 would give. Callers hold s.mu.
func (s *Store) lookup(op, name, key string) (*bucket, error) {
	if s.denied[name] {
		return nil, fail(op, name, key, store.ErrAccessDenied)
	}
	b := s.buckets[name]
	if b == nil {
		return nil, fail(op, name, key, store.ErrNotFound)
	}
	return b, nil
}

// ListBuckets lists all buckets in name order.
func (s *Store) ListBuckets(ctx context.Context) ([]store.Bucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]store.Bucket, 0, len(s.buckets))
	for name, b := range s.buckets {
		out = append(out, store.Bucket{Name: name, Created: b.created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// List returns one page of a ListObjectsV2-style listing: keys and common
// prefixes merged in byte order, at most MaxKeys of them together.
func (s *Store) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return store.ListPage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.lookup("List", in.Bucket, in.Prefix)
	if err != nil {
		return store.ListPage{}, err
	}
	after, afterIsPrefix, err := decodeToken(in.Token)
	if err != nil {
		return store.ListPage{}, fmt.Errorf("memstore List %s/%s: bad continuation token: %w", in.Bucket, in.Prefix, err)
	}
	max := in.MaxKeys
	if max <= 0 {
		max = defaultMaxKeys
	}

	var page store.ListPage
	count := 0
	lastItem, lastIsPrefix := "", false
	// Start at the first key >= Prefix; everything before cannot match.
	i := sort.SearchStrings(b.keys, in.Prefix)
	if in.Token != "" && after > in.Prefix {
		i = sort.SearchStrings(b.keys, after)
	}
	for ; i < len(b.keys); i++ {
		key := b.keys[i]
		if !strings.HasPrefix(key, in.Prefix) {
			break
		}
		if in.Token != "" {
			// Skip what the previous page already returned: the key
			// itself, or every key rolled up into the common prefix.
			if key <= after && !afterIsPrefix {
				continue
			}
			if afterIsPrefix && strings.HasPrefix(key, after) {
				continue
			}
		}
		item, isPrefix := key, false
		if in.Delimiter != "" {
			rest := key[len(in.Prefix):]
			if j := strings.Index(rest, in.Delimiter); j >= 0 {
				item, isPrefix = in.Prefix+rest[:j+len(in.Delimiter)], true
			}
		}
		if isPrefix && lastIsPrefix && item == lastItem {
			continue // rolled up into the prefix just returned
		}
		if count == max {
			// There is at least one more item: the page is truncated.
			page.NextToken = encodeToken(lastItem, lastIsPrefix)
			break
		}
		count++
		lastItem, lastIsPrefix = item, isPrefix
		if isPrefix {
			page.Prefixes = append(page.Prefixes, item)
			continue
		}
		o := b.objects[key]
		page.Objects = append(page.Objects, store.Object{
			Key: key, Size: int64(len(o.data)), ModTime: o.modTime, ETag: o.etag,
		})
	}
	return page, nil
}

// Tokens are opaque to callers; inside they record the last item returned
// and whether it was a common prefix (whose keys must all be skipped).
func encodeToken(item string, isPrefix bool) string {
	kind := "k"
	if isPrefix {
		kind = "p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind + item))
}

func decodeToken(tok string) (item string, isPrefix bool, err error) {
	if tok == "" {
		return "", false, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) == 0 || (raw[0] != 'k' && raw[0] != 'p') {
		return "", false, errors.New("malformed")
	}
	return string(raw[1:]), raw[0] == 'p', nil
}

// Stat returns the metadata of key.
func (s *Store) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	if err := ctx.Err(); err != nil {
		return store.Object{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.lookup("Stat", bucket, key)
	if err != nil {
		return store.Object{}, err
	}
	o, ok := b.objects[key]
	if !ok {
		return store.Object{}, fail("Stat", bucket, key, store.ErrNotFound)
	}
	return store.Object{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, ETag: o.etag}, nil
}

// ReadAt copies bytes of key starting at off into p. Like S3, a missing key
// is reported before an ETag mismatch.
func (s *Store) ReadAt(ctx context.Context, bucket, key, etag string, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("memstore ReadAt %s/%s: negative offset %d", bucket, key, off)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.lookup("ReadAt", bucket, key)
	if err != nil {
		return 0, err
	}
	o, ok := b.objects[key]
	if !ok {
		return 0, fail("ReadAt", bucket, key, store.ErrNotFound)
	}
	if etag != "" && etag != o.etag {
		return 0, fail("ReadAt", bucket, key, store.ErrChanged)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(o.data)) {
		return 0, io.EOF
	}
	n := copy(p, o.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// CreateBucket creates bucket; creating an existing bucket succeeds, as
// S3 does for a bucket the caller already owns.
func (s *Store) CreateBucket(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" {
		return errors.New("memstore CreateBucket: empty bucket name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denied[name] {
		return fail("CreateBucket", name, "", store.ErrAccessDenied)
	}
	if s.buckets[name] == nil {
		s.buckets[name] = &bucket{created: s.now(), objects: map[string]object{}}
	}
	return nil
}

// Put stores a copy of size bytes read from body under key, replacing any
// previous object. Any non-empty key is accepted.
func (s *Store) Put(ctx context.Context, bucketName, key string, body io.ReaderAt, size int64) (store.Object, error) {
	return s.PutIf(ctx, bucketName, key, body, size, store.PutOptions{})
}

// Delete removes key. Deleting a missing key succeeds, as on S3; a missing
// bucket is store.ErrNotFound.
func (s *Store) Delete(ctx context.Context, bucketName, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookup("Delete", bucketName, key)
	if err != nil {
		return err
	}
	if _, ok := b.objects[key]; !ok {
		return nil
	}
	delete(b.objects, key)
	i := sort.SearchStrings(b.keys, key)
	b.keys = append(b.keys[:i], b.keys[i+1:]...)
	return nil
}
