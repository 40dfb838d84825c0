// Package store defines the seam between bucketfs and an object service.
//
// Everything above this package (cache, fs) sees only the ObjectStore
// interface, plain result structs and the sentinel errors below. The S3
// implementation in store/s3 is the only code that imports the AWS S3 SDK;
// store/memstore is an in-memory implementation for tests and for keys a
// POSIX-backed server refuses.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them with context (operation, bucket,
// key, server code) so errors.Is works and messages stay informative. The fs
// layer maps them to errno values exactly once.
var (
	// ErrNotFound: no such key, prefix or bucket.
	ErrNotFound = errors.New("not found")
	// ErrAccessDenied: the credentials are valid but not allowed to do this.
	ErrAccessDenied = errors.New("access denied")
	// ErrAuth: the server rejected the credentials themselves (unknown key id,
	// bad signature, expired token) or none could be found.
	ErrAuth = errors.New("credentials rejected")
	// ErrChanged: the object no longer has the ETag a read was pinned to.
	ErrChanged = errors.New("object changed since it was opened")
	// ErrThrottled: the server asked us to slow down and retries ran out.
	ErrThrottled = errors.New("throttled")
	// ErrWrongRegion: the bucket lives in another region than requests are
	// signed for and the store could not follow it (a custom endpoint).
	ErrWrongRegion = errors.New("bucket in another region")
	// ErrUnsupported: the operation is not supported by this store.
	ErrUnsupported = errors.New("unsupported")
	// ErrExists: a create conditional on the key being free (If-None-Match)
	// found an object there; nothing was stored.
	ErrExists = errors.New("already exists")
)

// Bucket is one entry of ListBuckets.
type Bucket struct {
	Name    string
	Created time.Time
}

// Object describes one key.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	ETag    string // as the server sends it, quotes removed
}

// ListInput asks for one page of a listing.
type ListInput struct {
	Bucket    string
	Prefix    string
	Delimiter string // "/" for one directory level, "" for a recursive listing
	Token     string // continuation token from the previous page, "" for the first
	MaxKeys   int    // 0 means the server's default (1000 on S3)
}

// ListPage is one page of a listing. Prefixes are full common prefixes
// (including the Prefix asked for and the trailing delimiter).
type ListPage struct {
	Objects   []Object
	Prefixes  []string
	NextToken string // "" when this is the last page
}

// ObjectStore is the read side of an object service. Every method takes a
// context first and may block on the network.
type ObjectStore interface {
	// ListBuckets lists the buckets the credentials may list.
	ListBuckets(ctx context.Context) ([]Bucket, error)
	// List returns one page of keys and common prefixes.
	List(ctx context.Context, in ListInput) (ListPage, error)
	// Stat returns the metadata of one key (HeadObject).
	Stat(ctx context.Context, bucket, key string) (Object, error)
	// ReadRange streams up to n bytes of key starting at off (fewer at the
	// end of the object). If etag is not empty the read is pinned to it and
	// fails with ErrChanged when the object has another ETag. The body's
	// Read returns an error (not io.EOF) if the transfer breaks before the
	// end of the range or of the object. The caller closes it. (ReadAt, a
	// function of this package, reads into a buffer.)
	ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error)
}

// ReadAt fills p with the bytes of key starting at off, through one
// ReadRange of s, pinned to etag as ReadRange is. It returns the number of
// bytes read, which is less than len(p) only at the end of the object
// (with io.EOF).
func ReadAt(ctx context.Context, s ObjectStore, bucket, key, etag string, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("ReadAt %s/%s: negative offset %d", bucket, key, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	body, err := s.ReadRange(ctx, bucket, key, etag, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The body ended cleanly before len(p): the end of the object. A
		// body cut off early reports an error of its own instead.
		return n, io.EOF
	default:
		return n, err
	}
}

// Writer is implemented by stores that can create buckets and objects.
type Writer interface {
	CreateBucket(ctx context.Context, bucket string) error
	// PutIf stores size bytes read from body under key (multipart when
	// large), under the conditions of opts (for a multipart upload,
	// applying to the completion). Put, a function of this package, stores
	// without conditions.
	PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts PutOptions) (Object, error)
	// Delete removes key; deleting a missing key succeeds, as on S3.
	Delete(ctx context.Context, bucket, key string) error
	// Copy copies srcKey to dstKey inside bucket on the server (a multipart
	// copy above MaxCopySize). A non-empty srcETag pins the source: if the
	// source has another ETag the copy fails with ErrChanged.
	Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (Object, error)
	// StartUpload begins a multipart upload of key, which stays invisible
	// until Complete.
	StartUpload(ctx context.Context, bucket, key string) (Upload, error)
}

// Put stores size bytes read from body under key, unconditionally.
func Put(ctx context.Context, w Writer, bucket, key string, body io.ReaderAt, size int64) (Object, error) {
	return w.PutIf(ctx, bucket, key, body, size, PutOptions{})
}

// PutOptions makes an upload conditional. With both zero it is not.
type PutOptions struct {
	// IfAbsent stores only if no object has the key (If-None-Match: *),
	// else fails with ErrExists. A server that ignores the header stores
	// unconditionally; one that refuses it (501) gives ErrUnsupported.
	IfAbsent bool
	// IfMatch stores only if the current object has this ETag
	// (If-Match), else fails with ErrChanged.
	IfMatch string
}

// Limits of multipart uploads and copies, as on S3.
const (
	MinPartSize = 5 << 20 // every part but the last
	MaxPartSize = 5 << 30 // any part
	MaxParts    = 10000   // part numbers 1..MaxParts
	MaxCopySize = 5 << 30 // largest single CopyObject
	MaxPutSize  = 5 << 30 // largest single PutObject
)

// Upload is one multipart upload in progress. Its methods are safe for
// concurrent use: parts may be sent in parallel.
type Upload interface {
	// PutPart sends part num (1..MaxParts) from body. Sending a number
	// again replaces that part. Parts other than the last must be at
	// least MinPartSize when Complete runs.
	PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error
	// CopyPart sets part num to size bytes of srcKey (in the upload's
	// bucket; the upload's own key too: its current object) from off, copied
	// on the server (UploadPartCopy): nothing passes through the client.
	// A non-empty srcETag pins the source, else ErrChanged. Sending a
	// number again, by either method, replaces that part.
	CopyPart(ctx context.Context, num int, srcKey, srcETag string, off, size int64) error
	// Complete assembles parts 1..n, in order, into the object, under the
	// conditions of opts; every one of them must have been sent. After an
	// error the upload is still open: Abort it or try Complete again.
	Complete(ctx context.Context, n int, opts PutOptions) (Object, error)
	// Abort discards the upload and its parts.
	Abort(ctx context.Context) error
}
