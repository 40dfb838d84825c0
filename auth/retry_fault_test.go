package auth

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/bucketfs/bucketfs/internal/reqstat"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/s3"
)

// failingS3 answers 500 to every request while failing is set, else 200 to
// a HEAD; it counts requests.
type failingS3 struct {
	mu       sync.Mutex
	failing  bool
	failNext int // fail this many more requests, then recover
	hits     int
}

func (f *failingS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits++
	fail := f.failing || f.failNext > 0
	if f.failNext > 0 {
		f.failNext--
	}
	f.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", `"e"`)
	w.Header().Set("Content-Length", "3")
	w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
	w.WriteHeader(http.StatusOK)
}

func (f *failingS3) set(failing bool, failNext int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing, f.failNext = failing, failNext
	h := f.hits
	f.hits = 0
	return h
}

// TestRetryBudget: the clients of one Load share one retry budget; once a
// dead server has drained it, each call is tried once instead of
// maxAttempts times, and calls that succeed earn retries back.
func TestRetryBudget(t *testing.T) {
	const retryCost = 14 // the SDK's cost of a retry after a non-throttling error
	old := retryBudget
	retryBudget = 3 * retryCost
	t.Cleanup(func() { retryBudget = old })

	isolate(t)
	setEnvKeys(t)
	f := &failingS3{}
	srv := serve(t, f)
	res := mustLoad(t, Options{Region: "us-east-1", EndpointURL: srv.URL})

	// Two retryers (two regions' clients) draw from the same bucket.
	r1, r2 := res.Config.Retryer(), res.Config.Retryer()
	opErr := errors.New("connection reset")
	var granted []func(error) error
	for i, r := range []aws.Retryer{r1, r2, r1} {
		rel, err := r.GetRetryToken(context.Background(), opErr)
		if err != nil {
			t.Fatalf("retry token %d: %v", i, err)
		}
		granted = append(granted, rel)
	}
	if _, err := r2.GetRetryToken(context.Background(), opErr); err == nil {
		t.Fatalf("a fourth retry was granted from a budget of three")
	}
	for _, rel := range granted {
		rel(nil) // successful retries refund their cost
	}

	st := s3.New(res.Config, s3.Options{Endpoint: res.Endpoint, PathStyle: true})
	stat := func() error {
		_, err := st.Stat(context.Background(), "bkt", "key")
		return err
	}

	// A dead server: the first call retries until the budget is gone
	// (3 retries), every later call is sent once.
	f.set(true, 0)
	const calls = 20
	for i := 0; i < calls; i++ {
		if err := stat(); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("call %d against a failing server: %v", i, err)
		}
	}
	if hits := f.set(false, 0); hits != calls+3 {
		t.Errorf("%d calls to a dead server sent %d requests, want %d (one each plus the budget's 3 retries)", calls, hits, calls+3)
	}

	// The server is back: successes refill the budget one token each, so
	// after retryCost of them a transient failure is retried again.
	for i := 0; i < retryCost; i++ {
		if err := stat(); err != nil {
			t.Fatalf("healthy call %d: %v", i, err)
		}
	}
	f.set(false, 1)
	if err := stat(); err != nil {
		t.Errorf("one transient 500 after the budget refilled: %v, want it retried", err)
	}
	if hits := f.set(false, 0); hits != 2 {
		t.Errorf("the transient failure took %d requests, want 2", hits)
	}
}

// TestRetriesCounted: every retry the retryer grants is counted on the
// context of the store call that sent the request, so metrics and the
// failure log can tell what a call cost.
func TestRetriesCounted(t *testing.T) {
	isolate(t)
	setEnvKeys(t)
	f := &failingS3{}
	srv := serve(t, f)
	res := mustLoad(t, Options{Region: "us-east-1", EndpointURL: srv.URL})
	st := s3.New(res.Config, s3.Options{Endpoint: res.Endpoint, PathStyle: true})
	for _, tc := range []struct {
		name     string
		failNext int
		failing  bool
		want     int64
		wantErr  bool
	}{
		{"no fault", 0, false, 0, false},
		{"one 500", 1, false, 1, false},
		{"two 500s", 2, false, 2, false},
		{"dead server: every retry", 0, true, maxAttempts - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.set(tc.failing, tc.failNext)
			ctx, c := reqstat.WithCounter(context.Background())
			_, err := st.Stat(ctx, "bkt", "key")
			if (err != nil) != tc.wantErr {
				t.Fatalf("Stat: %v, want error %v", err, tc.wantErr)
			}
			if got := c.Retries(); got != tc.want {
				t.Errorf("retries counted %d, want %d", got, tc.want)
			}
		})
	}
	f.set(false, 0)
}
