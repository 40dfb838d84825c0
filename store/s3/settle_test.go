package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store"
)

// putServer answers HEAD with the object it holds (none when etag is "")
// and every PUT with the status refuse, or, with refuse 0, by dropping the
// connection without an answer, as a server does that refuses a condition
// before reading the body.
func putServer(t *testing.T, etag string, size int64, refuse int) (*Store, *atomic.Int32) {
	t.Helper()
	var heads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			if refuse != 0 {
				w.WriteHeader(refuse)
				fmt.Fprintf(w, "<Error><Code>PreconditionFailed</Code><Message>refused</Message></Error>")
				return
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case http.MethodHead:
			heads.Add(1)
			if etag == "" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Header().Set("ETag", `"`+etag+`"`)
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			w.Header().Set("Last-Modified", "Sat, 28 Nov 2026 01:00:00 GMT")
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:           "us-east-1",
		HTTPClient:       awshttp.NewBuildableClient(),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDSETTLETEST", "settleTestSecret0123456789", ""),
		RetryMaxAttempts: 2,
	}
	return newStore(cfg, Options{Endpoint: srv.URL, PathStyle: true}, false, nil), &heads
}

// A conditional write whose connection breaks without an answer is decided
// by what the object shows afterwards, never reported as a plain network
// error when the object tells the outcome.
func TestConditionalPutBrokenOff(t *testing.T) {
	body := []byte("the bytes written")
	sum := md5.Sum(body)
	same := hex.EncodeToString(sum[:])
	other := "0123456789abcdef0123456789abcdef"
	n := int64(len(body))
	tests := []struct {
		name      string
		etag      string // of the object on the server after the break; "" none
		size      int64
		opts      store.PutOptions
		want      error // nil: success; errNetwork: the original error
		wantHeads int32
		refuse    int // non-zero: the server answers PUTs with this status instead of breaking off
	}{
		{"absent: another object there", other, 10, store.PutOptions{IfAbsent: true}, store.ErrExists, 1, 0},
		{"absent: our bytes arrived", same, n, store.PutOptions{IfAbsent: true}, nil, 1, 0},
		{"absent: key still free", "", 0, store.PutOptions{IfAbsent: true}, errNetwork, 1, 0},
		{"match: replaced by someone", other, 10, store.PutOptions{IfMatch: "feedfeedfeedfeedfeedfeedfeedfeed"}, store.ErrChanged, 1, 0},
		{"match: deleted by someone", "", 0, store.PutOptions{IfMatch: other}, store.ErrChanged, 1, 0},
		{"match: old version still there", other, 10, store.PutOptions{IfMatch: other}, errNetwork, 1, 0},
		{"match: our bytes arrived", same, n, store.PutOptions{IfMatch: other}, nil, 1, 0},
		{"unconditional: not looked at", same, n, store.PutOptions{}, errNetwork, 0, 0},
		// A 412 whose object holds exactly the bytes written is the write's
		// own earlier attempt, landed before its answer was lost and the SDK
		// retried: success. Any other object keeps the refusal.
		{"412, absent: our bytes landed", same, n, store.PutOptions{IfAbsent: true}, nil, 1, 412},
		{"412, absent: another object", other, 10, store.PutOptions{IfAbsent: true}, store.ErrExists, 1, 412},
		{"412, absent: same size, other bytes", other, n, store.PutOptions{IfAbsent: true}, store.ErrExists, 1, 412},
		{"412, absent: gone again", "", 0, store.PutOptions{IfAbsent: true}, store.ErrExists, 1, 412},
		{"412, match: our bytes landed", same, n, store.PutOptions{IfMatch: other}, nil, 1, 412},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, heads := putServer(t, tc.etag, tc.size, tc.refuse)
			o, err := s.PutIf(t.Context(), "bkt", "k", bytes.NewReader(body), n, tc.opts)
			switch {
			case tc.want == nil:
				if err != nil || o.ETag != same || o.Size != n {
					t.Errorf("PutIf = %+v, %v; want success with ETag %s", o, err, same)
				}
			case tc.want == errNetwork:
				if err == nil {
					t.Fatal("PutIf succeeded")
				}
				for _, s := range []error{store.ErrExists, store.ErrChanged, store.ErrNotFound, store.ErrAuth, store.ErrAccessDenied} {
					if errors.Is(err, s) {
						t.Errorf("PutIf = %v: claims %v though nothing tells", err, s)
					}
				}
			default:
				if !errors.Is(err, tc.want) {
					t.Errorf("PutIf = %v, want %v", err, tc.want)
				}
			}
			if got := heads.Load(); got != tc.wantHeads {
				t.Errorf("%d HEADs, want %d", got, tc.wantHeads)
			}
		})
	}
}

// errNetwork marks a case whose error must stay the network error.
var errNetwork = errors.New("network error")
