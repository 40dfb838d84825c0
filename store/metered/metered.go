// Package metered wraps a store.ObjectStore (and store.Writer) to count
// every call by operation and outcome, its duration, retries and bytes, and
// to log one line per failed request. It reports to an Observer
// (metrics.Metrics implements it) so it needs no metrics library itself.
package metered

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/bucketfs/bucketfs/internal/reqstat"
	"github.com/bucketfs/bucketfs/store"
)

// Operation names: the op label of the metrics and the op of log lines.
const (
	OpListBuckets    = "list_buckets"
	OpList           = "list"
	OpHead           = "head" // Stat
	OpGet            = "get"  // ReadAt and ReadRange
	OpPut            = "put"  // Put and PutIf (multipart inside the store when large)
	OpStartUpload    = "start_upload"
	OpPutPart        = "put_part"
	OpCopyPart       = "copy_part" // UploadPartCopy
	OpCompleteUpload = "complete_upload"
	OpAbortUpload    = "abort_upload"
	OpCopy           = "copy"
	OpDelete         = "delete"
	OpCreateBucket   = "create_bucket"
)

// Status labels, from the sentinels of package store.
const (
	StatusOK           = "ok"
	StatusNotFound     = "not_found"
	StatusAccessDenied = "access_denied"
	StatusAuth         = "auth"
	StatusChanged      = "changed"
	StatusThrottled    = "throttled"
	StatusWrongRegion  = "wrong_region"
	StatusExists       = "exists"
	StatusUnsupported  = "unsupported"
	StatusCanceled     = "canceled" // the caller gave up (context.Canceled)
	StatusTimeout      = "timeout"  // a deadline (--request-timeout) ran out
	StatusError        = "error"
)

// Observer receives what the store calls did. Its methods must be safe for
// concurrent use and must not block.
type Observer interface {
	// ObserveRequest records one call: its operation, status, duration
	// and how many times the SDK retried it.
	ObserveRequest(op, status string, took time.Duration, retries int64)
	AddBytesRead(n int64)
	AddBytesWritten(n int64)
}

// Store is a metered store.ObjectStore.
type Store struct {
	inner store.ObjectStore
	obs   Observer
	log   *slog.Logger
	now   func() time.Time
}

// WriteStore is a metered store that also implements store.Writer.
type WriteStore struct {
	*Store
	w store.Writer
}

var (
	_ store.ObjectStore = (*Store)(nil)
	_ store.ObjectStore = (*WriteStore)(nil)
	_ store.Writer      = (*WriteStore)(nil)
)

// New wraps s. The result implements store.Writer exactly when s does. A
// nil log discards the failure lines.
func New(s store.ObjectStore, obs Observer, log *slog.Logger) store.ObjectStore {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Store{inner: s, obs: obs, log: log, now: time.Now}
	if w, ok := s.(store.Writer); ok {
		return &WriteStore{Store: m, w: w}
	}
	return m
}

// Status is the status label of err.
func Status(err error) string {
	switch {
	case err == nil:
		return StatusOK
	// Canceled first: a request cut short by the caller (an interrupted
	// read, a stalled transfer the cache cut) says nothing about the
	// server, whatever else the error chain holds. A deadline is the
	// request timeout: the server hung or kept failing, which is worth
	// a log line.
	case errors.Is(err, context.Canceled):
		return StatusCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return StatusTimeout
	case errors.Is(err, store.ErrNotFound):
		return StatusNotFound
	case errors.Is(err, store.ErrAccessDenied):
		return StatusAccessDenied
	case errors.Is(err, store.ErrAuth):
		return StatusAuth
	case errors.Is(err, store.ErrChanged):
		return StatusChanged
	case errors.Is(err, store.ErrThrottled):
		return StatusThrottled
	case errors.Is(err, store.ErrWrongRegion):
		return StatusWrongRegion
	case errors.Is(err, store.ErrExists):
		return StatusExists
	case errors.Is(err, store.ErrUnsupported):
		return StatusUnsupported
	}
	return StatusError
}

// call is one store call being measured.
type call struct {
	s           *Store
	op          string
	bucket, key string
	start       time.Time
	counter     *reqstat.Counter
}

// begin starts measuring a call and returns the context to make it with,
// which counts the SDK's retries of it.
func (s *Store) begin(ctx context.Context, op, bucket, key string) (context.Context, *call) {
	ctx, c := reqstat.WithCounter(ctx)
	return ctx, &call{s: s, op: op, bucket: bucket, key: key, start: s.now(), counter: c}
}

// end records the call's outcome and logs a failure.
func (c *call) end(err error) {
	status := Status(err)
	retries := c.counter.Retries()
	c.s.obs.ObserveRequest(c.op, status, c.s.now().Sub(c.start), retries)
	c.s.logFailure(c.op, c.bucket, c.key, status, retries, err, "")
}

// logFailure writes the one line of a failed request. Not found and
// canceled are ordinary answers (a lookup of a missing name, a reader that
// went away), not failures. The error text comes from the store, which
// never puts request headers or credentials in it.
func (s *Store) logFailure(op, bucket, key, status string, retries int64, err error, phase string) {
	if err == nil || status == StatusNotFound || status == StatusCanceled {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", op), slog.String("bucket", bucket), slog.String("key", key),
		slog.String("status", status), slog.Int64("retries", retries),
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) && hs.HTTPStatusCode() != 0 {
		attrs = append(attrs, slog.Int("http_status", hs.HTTPStatusCode()))
	}
	if phase != "" {
		attrs = append(attrs, slog.String("phase", phase))
	}
	attrs = append(attrs, slog.String("err", err.Error()))
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "S3 request failed", attrs...)
}

// ListBuckets is metered as list_buckets.
func (s *Store) ListBuckets(ctx context.Context) ([]store.Bucket, error) {
	ctx, c := s.begin(ctx, OpListBuckets, "", "")
	b, err := s.inner.ListBuckets(ctx)
	c.end(err)
	return b, err
}

// List is metered as list; the key of a failure line is the prefix.
func (s *Store) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	ctx, c := s.begin(ctx, OpList, in.Bucket, in.Prefix)
	p, err := s.inner.List(ctx, in)
	c.end(err)
	return p, err
}

// Stat is metered as head.
func (s *Store) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	ctx, c := s.begin(ctx, OpHead, bucket, key)
	o, err := s.inner.Stat(ctx, bucket, key)
	c.end(err)
	return o, err
}

// ReadRange is metered as get when the response headers arrive (its
// duration); the body's bytes are counted as they are read, and a body
// that breaks is logged as a failure of the same request (phase body)
// without counting another request.
func (s *Store) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	ctx, c := s.begin(ctx, OpGet, bucket, key)
	rc, err := s.inner.ReadRange(ctx, bucket, key, etag, off, n)
	c.end(err)
	if err != nil {
		return rc, err
	}
	return &body{rc: rc, s: s, c: c}, nil
}

// body counts a ReadRange body's bytes as they are read.
type body struct {
	rc     io.ReadCloser
	s      *Store
	c      *call
	logged sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.s.obs.AddBytesRead(int64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		b.logged.Do(func() {
			b.s.logFailure(b.c.op, b.c.bucket, b.c.key, Status(err), b.c.counter.Retries(), err, "body")
		})
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
