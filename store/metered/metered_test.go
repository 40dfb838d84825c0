package metered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/internal/reqstat"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
	"github.com/bucketfs/bucketfs/store/storetest"
)

// fakeObserver records what the store reported.
type fakeObserver struct {
	mu            sync.Mutex
	reqs          []req
	read, written int64
}

type req struct {
	op, status string
	retries    int64
}

func (f *fakeObserver) ObserveRequest(op, status string, took time.Duration, retries int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if took < 0 {
		panic("negative duration")
	}
	f.reqs = append(f.reqs, req{op, status, retries})
}

func (f *fakeObserver) AddBytesRead(n int64) {
	f.mu.Lock()
	f.read += n
	f.mu.Unlock()
}

func (f *fakeObserver) AddBytesWritten(n int64) {
	f.mu.Lock()
	f.written += n
	f.mu.Unlock()
}

// httpError is an error with an HTTP status, as the SDK's response errors
// have.
type httpError struct{ code int }

func (e *httpError) Error() string       { return fmt.Sprintf("http response error StatusCode: %d", e.code) }
func (e *httpError) HTTPStatusCode() int { return e.code }

// brokenBody makes every ReadRange body fail after its first byte.
type brokenBody struct{ store.ObjectStore }

func (b brokenBody) ReadRange(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := b.ObjectStore.ReadRange(ctx, bucket, key, etag, off, n)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(io.MultiReader(io.LimitReader(rc, 1), errReader{})), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

func TestMetered(t *testing.T) {
	const data = "0123456789" // the object "b/k"
	for _, tc := range []struct {
		name string
		// hook, if set, is the faultstore hook; it may count retries
		// on the context as the SDK's retryer would.
		hook    faultstore.Hook
		inner   func(store.ObjectStore) store.ObjectStore
		do      func(ctx context.Context, s store.ObjectStore) error
		want    []req
		read    int64
		written int64
		// logs are the attributes of each "S3 request failed" line.
		logs [][]string
	}{
		{name: "list_buckets", do: func(ctx context.Context, s store.ObjectStore) error {
			_, err := s.ListBuckets(ctx)
			return err
		}, want: []req{{OpListBuckets, StatusOK, 0}}},
		{name: "list", do: func(ctx context.Context, s store.ObjectStore) error {
			_, err := s.List(ctx, store.ListInput{Bucket: "b", Delimiter: "/"})
			return err
		}, want: []req{{OpList, StatusOK, 0}}},
		{name: "head of a missing key is an answer, not logged", do: func(ctx context.Context, s store.ObjectStore) error {
			_, err := s.Stat(ctx, "b", "missing")
			return expect(err, store.ErrNotFound)
		}, want: []req{{OpHead, StatusNotFound, 0}}},
		{name: "ReadAt to the end counts its bytes, EOF is ok", do: func(ctx context.Context, s store.ObjectStore) error {
			p := make([]byte, 8)
			n, err := store.ReadAt(ctx, s, "b", "k", "", p, 4)
			if n != 6 {
				return fmt.Errorf("read %d bytes", n)
			}
			return expect(err, io.EOF)
		}, want: []req{{OpGet, StatusOK, 0}}, read: 6},
		{name: "ReadRange counts the bytes as the body is read", do: func(ctx context.Context, s store.ObjectStore) error {
			rc, err := s.ReadRange(ctx, "b", "k", "", 2, 5)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if string(b) != data[2:7] {
				return fmt.Errorf("body %q", b)
			}
			return err
		}, want: []req{{OpGet, StatusOK, 0}}, read: 5},
		{name: "a body that breaks logs the request once, counts it once",
			inner: func(s store.ObjectStore) store.ObjectStore { return brokenBody{s} },
			do: func(ctx context.Context, s store.ObjectStore) error {
				rc, err := s.ReadRange(ctx, "b", "k", "", 0, 10)
				if err != nil {
					return err
				}
				defer rc.Close()
				_, err = io.ReadAll(rc)
				if err == nil {
					return errors.New("no error from a broken body")
				}
				_, _ = rc.Read(make([]byte, 1))
				return nil
			}, want: []req{{OpGet, StatusOK, 0}}, read: 1,
			logs: [][]string{{"op=get", "bucket=b", "key=k", "status=error", "retries=0", "phase=body", `err="connection reset by peer"`}}},
		{name: "throttled after retries: one line with retries and HTTP status",
			hook: func(ctx context.Context, op, bucket, key string) error {
				if op == faultstore.OpReadAt {
					reqstat.Retried(ctx)
					reqstat.Retried(ctx)
					return fmt.Errorf("s3 GetObject %s/%s: %w (SlowDown): %w", bucket, key, store.ErrThrottled, &httpError{503})
				}
				return nil
			},
			do: func(ctx context.Context, s store.ObjectStore) error {
				_, err := store.ReadAt(ctx, s, "b", "k", "", make([]byte, 4), 0)
				return expect(err, store.ErrThrottled)
			}, want: []req{{OpGet, StatusThrottled, 2}},
			logs: [][]string{{"op=get", "bucket=b", "key=k", "status=throttled", "retries=2", "http_status=503", "SlowDown"}}},
		{name: "access denied is logged",
			hook: func(ctx context.Context, op, bucket, key string) error {
				return fmt.Errorf("s3 HeadObject %s/%s: %w", bucket, key, store.ErrAccessDenied)
			},
			do: func(ctx context.Context, s store.ObjectStore) error {
				_, err := s.Stat(ctx, "b", "k")
				return expect(err, store.ErrAccessDenied)
			}, want: []req{{OpHead, StatusAccessDenied, 0}},
			logs: [][]string{{"op=head", "bucket=b", "key=k", "status=access_denied", "retries=0"}}},
		{name: "canceled is not logged",
			hook: func(ctx context.Context, op, bucket, key string) error {
				return fmt.Errorf("s3 ListObjectsV2 %s/%s: %w", bucket, key, context.Canceled)
			},
			do: func(ctx context.Context, s store.ObjectStore) error {
				_, err := s.List(ctx, store.ListInput{Bucket: "b", Prefix: "p/"})
				return expect(err, context.Canceled)
			}, want: []req{{OpList, StatusCanceled, 0}}},
		{name: "a deadline is a timeout, even around a sentinel, and logged",
			hook: func(ctx context.Context, op, bucket, key string) error {
				reqstat.Retried(ctx)
				return fmt.Errorf("%w: %w", store.ErrThrottled, context.DeadlineExceeded)
			},
			do: func(ctx context.Context, s store.ObjectStore) error {
				_, err := s.Stat(ctx, "b", "k")
				return expect(err, context.DeadlineExceeded)
			}, want: []req{{OpHead, StatusTimeout, 1}},
			logs: [][]string{{"op=head", "status=timeout", "retries=1"}}},
		{name: "other errors: status error",
			hook: func(ctx context.Context, op, bucket, key string) error {
				reqstat.Retried(ctx)
				return fmt.Errorf("s3 ListBuckets: %w", &httpError{500})
			},
			do: func(ctx context.Context, s store.ObjectStore) error {
				_, err := s.ListBuckets(ctx)
				return expect(err, nil)
			}, want: []req{{OpListBuckets, StatusError, 1}},
			logs: [][]string{{"op=list_buckets", `bucket=""`, `key=""`, "status=error", "retries=1", "http_status=500"}}},
		{name: "put counts bytes written", do: func(ctx context.Context, s store.ObjectStore) error {
			w := s.(store.Writer)
			if _, err := store.Put(ctx, w, "b", "new", strings.NewReader("hello"), 5); err != nil {
				return err
			}
			_, err := w.PutIf(ctx, "b", "k", strings.NewReader("abc"), 3, store.PutOptions{IfAbsent: true})
			return expect(err, store.ErrExists)
		}, want: []req{{OpPut, StatusOK, 0}, {OpPut, StatusExists, 0}}, written: 5,
			logs: [][]string{{"op=put", "key=k", "status=exists"}}},
		{name: "multipart upload", do: func(ctx context.Context, s store.ObjectStore) error {
			w := s.(store.Writer)
			up, err := w.StartUpload(ctx, "b", "big")
			if err != nil {
				return err
			}
			part := bytes.Repeat([]byte("x"), store.MinPartSize)
			if err := up.PutPart(ctx, 1, bytes.NewReader(part), int64(len(part))); err != nil {
				return err
			}
			if err := up.PutPart(ctx, 2, strings.NewReader("tail"), 4); err != nil {
				return err
			}
			if _, err := up.Complete(ctx, 2, store.PutOptions{}); err != nil {
				return err
			}
			up2, err := w.StartUpload(ctx, "b", "gone")
			if err != nil {
				return err
			}
			return up2.Abort(ctx)
		}, want: []req{
			{OpStartUpload, StatusOK, 0}, {OpPutPart, StatusOK, 0}, {OpPutPart, StatusOK, 0},
			{OpCompleteUpload, StatusOK, 0}, {OpStartUpload, StatusOK, 0}, {OpAbortUpload, StatusOK, 0},
		}, written: store.MinPartSize + 4},
		{name: "copy of a changed source, delete, create_bucket", do: func(ctx context.Context, s store.ObjectStore) error {
			w := s.(store.Writer)
			if _, err := w.Copy(ctx, "b", "k", "not-the-etag", "k2"); !errors.Is(err, store.ErrChanged) {
				return fmt.Errorf("copy: %v", err)
			}
			if err := w.Delete(ctx, "b", "k"); err != nil {
				return err
			}
			return w.CreateBucket(ctx, "c")
		}, want: []req{{OpCopy, StatusChanged, 0}, {OpDelete, StatusOK, 0}, {OpCreateBucket, StatusOK, 0}},
			logs: [][]string{{"op=copy", "key=k2", "status=changed"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
			ctx := context.Background()
			mem := memstore.New()
			if err := mem.CreateBucket(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if _, err := mem.Put(ctx, "b", "k", strings.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			fault := faultstore.New(mem)
			fault.SetHook(tc.hook)
			var inner store.ObjectStore = fault
			if tc.inner != nil {
				inner = tc.inner(inner)
			}
			obs := &fakeObserver{}
			var logs bytes.Buffer
			s := New(inner, obs, slog.New(slog.NewTextHandler(&logs, nil)))
			if err := tc.do(ctx, s); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(obs.reqs) != fmt.Sprint(tc.want) {
				t.Errorf("requests %v, want %v", obs.reqs, tc.want)
			}
			if obs.read != tc.read || obs.written != tc.written {
				t.Errorf("bytes read %d, written %d; want %d, %d", obs.read, obs.written, tc.read, tc.written)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if l != "" {
					lines = append(lines, l)
				}
			}
			if len(lines) != len(tc.logs) {
				t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(tc.logs), logs.String())
			}
			for i, l := range lines {
				if !strings.Contains(l, "level=WARN") || !strings.Contains(l, `msg="S3 request failed"`) {
					t.Errorf("line %q is not a warning \"S3 request failed\"", l)
				}
				for _, want := range tc.logs[i] {
					if !strings.Contains(l, want) {
						t.Errorf("line %q lacks %q", l, want)
					}
				}
				if strings.Contains(l, secret) {
					t.Errorf("line %q holds the secret key", l)
				}
			}
		})
	}
}

// expect checks that err is (or wraps) want; want nil means any error.
func expect(err, want error) error {
	switch {
	case err == nil:
		return fmt.Errorf("no error, want %v", want)
	case want != nil && !errors.Is(err, want):
		return fmt.Errorf("error %v, want %v", err, want)
	}
	return nil
}

// TestWriterOnlyWhenInnerWrites: the metered store is a store.Writer
// exactly when the store it wraps is one, so callers' type checks still
// decide read-only vs read-write.
func TestWriterOnlyWhenInnerWrites(t *testing.T) {
	mem := memstore.New()
	for _, tc := range []struct {
		name  string
		inner store.ObjectStore
		want  bool
	}{
		{"writer", mem, true},
		{"read-only", struct{ store.ObjectStore }{mem}, false},
	} {
		_, got := New(tc.inner, &fakeObserver{}, nil).(store.Writer)
		if got != tc.want {
			t.Errorf("%s: store.Writer = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestConformance: the wrapper changes nothing a store's user can see.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.ObjectStore, store.Writer, string) {
		mem := memstore.New()
		if err := mem.CreateBucket(t.Context(), "bucket"); err != nil {
			t.Fatal(err)
		}
		s := New(mem, &fakeObserver{}, nil)
		return s, s.(store.Writer), "bucket"
	})
}
