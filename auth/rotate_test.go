package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestEarlyBy(t *testing.T) {
	for _, tc := range []struct {
		left     time.Duration
		min, max time.Duration
	}{
		{6 * time.Hour, 4 * time.Minute, 5 * time.Minute},
		{time.Hour, 4 * time.Minute, 5 * time.Minute},
		{2 * time.Minute, time.Minute, time.Minute}, // half of what is left
		{4 * time.Second, 2 * time.Second, 2 * time.Second},
	} {
		for range 20 {
			if got := earlyBy(tc.left); got < tc.min || got > tc.max {
				t.Errorf("earlyBy(%s) = %s, want in [%s, %s]", tc.left, got, tc.min, tc.max)
			}
		}
	}
}

// scriptedProvider returns the next of its results on every Retrieve.
type scriptedProvider struct {
	mu          sync.Mutex
	results     []scripted
	calls       int
	invalidated int
}

type scripted struct {
	creds aws.Credentials
	err   error
}

func (p *scriptedProvider) Retrieve(context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.results[min(p.calls, len(p.results)-1)]
	p.calls++
	return r.creds, r.err
}

func (p *scriptedProvider) Invalidate() {
	p.mu.Lock()
	p.invalidated++
	p.mu.Unlock()
}

func TestRefresher(t *testing.T) {
	now := time.Now()
	creds := func(id string, left time.Duration) aws.Credentials {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: testSecret, CanExpire: true, Expires: now.Add(left)}
	}
	down := errors.New("metadata service down")
	for _, tc := range []struct {
		name     string
		script   []scripted
		wantID   string // from the last Retrieve; "" means an error
		maxLeft  time.Duration
		wantWarn bool
	}{
		{"first retrieval is reported early", []scripted{{creds("A", 2*time.Minute), nil}}, "A", 61 * time.Second, false},
		{"long-term keys stay long-term", []scripted{{aws.Credentials{AccessKeyID: "A", SecretAccessKey: testSecret}, nil}}, "A", 0, false},
		{"rotation", []scripted{{creds("A", 2*time.Minute), nil}, {creds("B", time.Hour), nil}}, "B", 56 * time.Minute, false},
		{"failed refresh keeps valid credentials and retries soon",
			[]scripted{{creds("A", 2*time.Minute), nil}, {aws.Credentials{}, down}}, "A", failedRefreshRetry + time.Second, true},
		{"failed refresh of nearly expired credentials fails",
			[]scripted{{creds("A", 5*time.Second), nil}, {aws.Credentials{}, down}}, "", 0, false},
		{"expired credentials from the source count as a failure",
			[]scripted{{creds("A", 2*time.Minute), nil}, {creds("OLD", -time.Minute), nil}}, "A", failedRefreshRetry + time.Second, true},
		{"first retrieval fails", []scripted{{aws.Credentials{}, down}}, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			p := &scriptedProvider{results: tc.script}
			logs := &lockedBuffer{}
			r := newRefresher(p, slog.New(slog.NewTextHandler(logs, nil)), func(aws.Credentials) string { return "test source" })
			var got aws.Credentials
			var err error
			for range tc.script {
				got, err = r.Retrieve(context.Background())
			}
			if p.invalidated != len(tc.script) {
				t.Errorf("provider invalidated %d times in %d retrievals", p.invalidated, len(tc.script))
			}
			if tc.wantID == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got.AccessKeyID)
				}
				return
			}
			if err != nil || got.AccessKeyID != tc.wantID {
				t.Fatalf("got %q, %v; want %q", got.AccessKeyID, err, tc.wantID)
			}
			if tc.maxLeft > 0 && (!got.CanExpire || time.Until(got.Expires) > tc.maxLeft) {
				t.Errorf("reported expiry in %s, want at most %s", time.Until(got.Expires), tc.maxLeft)
			}
			if tc.maxLeft == 0 && got.CanExpire {
				t.Errorf("long-term credentials reported as expiring")
			}
			out := logs.String()
			if tc.wantWarn != strings.Contains(out, "refreshing AWS credentials failed") {
				t.Errorf("warning logged = %v, want %v:\n%s", !tc.wantWarn, tc.wantWarn, out)
			}
			if strings.Contains(out, testSecret) {
				t.Errorf("log contains the secret")
			}
		})
	}
}

// rotatingIMDS is an IMDSv2 fake whose credentials the test replaces, and
// which can be taken down (500 on every request).
type rotatingIMDS struct {
	mu      sync.Mutex
	akid    string
	expires time.Time
	down    bool
	served  []string // key ids handed out
	failed  int      // requests answered 500
}

func (f *rotatingIMDS) set(akid string, expires time.Time, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.akid, f.expires, f.down = akid, expires, down
}

func (f *rotatingIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.failed++
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	const creds = "/latest/meta-data/iam/security-credentials/"
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		fmt.Fprint(w, "tok")
	case r.Header.Get("X-Aws-Ec2-Metadata-Token") != "tok":
		http.Error(w, "no token", http.StatusUnauthorized)
	case r.URL.Path == creds:
		fmt.Fprint(w, "role")
	case r.URL.Path == creds+"role":
		f.served = append(f.served, f.akid)
		json.NewEncoder(w).Encode(map[string]string{
			"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": f.akid, "SecretAccessKey": testSecret, "Token": "",
			"LastUpdated": time.Now().UTC().Format(time.RFC3339), "Expiration": f.expires.UTC().Format(time.RFC3339),
		})
	default:
		http.NotFound(w, r)
	}
}

func (f *rotatingIMDS) stats() (served []string, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.served...), f.failed
}

// TestRotationThroughLoad runs the shared credentials cache of Load against
// a metadata service that rotates short-lived credentials and then goes
// down: the cache switches to new keys before the old ones expire, keeps
// valid keys through the outage and picks up new ones when it returns.
func TestRotationThroughLoad(t *testing.T) {
	// The standard chain wraps the provider in the SDK's own cache, which
	// the refresher must see through; --credentials builds it bare.
	for _, source := range []string{SourceChain, SourceInstance} {
		t.Run("credentials="+source, func(t *testing.T) { testRotation(t, source) })
	}
}

func testRotation(t *testing.T, source string) {
	isolate(t)
	f := &rotatingIMDS{}
	useIMDS(t, f)
	oldRetry, oldMin := failedRefreshRetry, minValidity
	failedRefreshRetry, minValidity = 300*time.Millisecond, time.Second
	t.Cleanup(func() { failedRefreshRetry, minValidity = oldRetry, oldMin })
	// IMDS expirations have whole seconds.
	start := time.Now().Truncate(time.Second)
	ctx := context.Background()
	realExpiry := map[string]time.Time{"AKIDA": start.Add(6 * time.Second), "AKIDB": start.Add(12 * time.Second), "AKIDC": start.Add(time.Minute)}

	f.set("AKIDA", start.Add(6*time.Second), false)
	res := mustLoad(t, Options{Region: "us-east-1", Credentials: source})
	if !res.Expires.Equal(start.Add(6 * time.Second)) {
		t.Errorf("Result.Expires = %s, want the real expiry %s", res.Expires, start.Add(6*time.Second))
	}
	get := func() string {
		t.Helper()
		c, err := res.Config.Credentials.Retrieve(ctx)
		if err != nil {
			t.Fatalf("Retrieve at +%s: %v", time.Since(start).Round(time.Millisecond), err)
		}
		// The cache reports early expiries; what matters is the real one.
		if real := realExpiry[c.AccessKeyID]; !time.Now().Before(real) {
			t.Errorf("cache handed out %s at +%s, which expired at +%s", c.AccessKeyID, time.Since(start), real.Sub(start))
		}
		return c.AccessKeyID
	}
	if id := get(); id != "AKIDA" {
		t.Fatalf("first key %s", id)
	}

	// New keys appear at the metadata service; the cache takes them well
	// before A expires (half of A's 6s, i.e. at about +3s).
	f.set("AKIDB", start.Add(12*time.Second), false)
	for time.Since(start) < 5*time.Second && get() == "AKIDA" {
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(start); d >= 5*time.Second {
		t.Fatalf("still on A at +%s, A expires at +6s", d)
	}

	// Outage: B stays in use (refresh due at about +9s fails) until the
	// service returns with C.
	f.set("AKIDB", start.Add(12*time.Second), true)
	for time.Since(start) < 10*time.Second {
		if id := get(); id != "AKIDB" {
			t.Fatalf("key %s during the outage, want B", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, failed := f.stats(); failed == 0 {
		t.Fatal("no refresh was attempted during the outage; the test proves nothing")
	}
	f.set("AKIDC", start.Add(time.Minute), false)
	for time.Since(start) < 11*time.Second && get() != "AKIDC" {
		time.Sleep(50 * time.Millisecond)
	}
	if id := get(); id != "AKIDC" {
		t.Fatalf("key %s after the service returned, want C before B expires", id)
	}
	served, failed := f.stats()
	t.Logf("served %v, %d requests failed during the outage", served, failed)
}

// TestRefreshHook: Options.OnRefresh hears every refresh after the first
// retrieval, with its outcome and the real expiry of the credentials in use.
func TestRefreshHook(t *testing.T) {
	now := time.Now()
	creds := func(id string, left time.Duration) aws.Credentials {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: testSecret, CanExpire: true, Expires: now.Add(left)}
	}
	down := errors.New("metadata service down")
	type call struct {
		ok      bool
		expires time.Time
	}
	for _, tc := range []struct {
		name   string
		script []scripted
		want   []call
	}{
		{"first retrieval is no refresh", []scripted{{creds("A", time.Hour), nil}}, nil},
		{"rotation", []scripted{{creds("A", 2*time.Minute), nil}, {creds("B", time.Hour), nil}},
			[]call{{true, now.Add(time.Hour)}}},
		{"long-term keys report no expiry", []scripted{
			{aws.Credentials{AccessKeyID: "A", SecretAccessKey: testSecret}, nil},
			{aws.Credentials{AccessKeyID: "A", SecretAccessKey: testSecret}, nil}},
			[]call{{true, time.Time{}}}},
		{"failure keeps the old expiry", []scripted{{creds("A", 2*time.Minute), nil}, {aws.Credentials{}, down}, {creds("B", time.Hour), nil}},
			[]call{{false, now.Add(2 * time.Minute)}, {true, now.Add(time.Hour)}}},
		{"failure of nearly expired credentials", []scripted{{creds("A", 5*time.Second), nil}, {aws.Credentials{}, down}},
			[]call{{false, now.Add(5 * time.Second)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			p := &scriptedProvider{results: tc.script}
			r := newRefresher(p, slog.New(slog.DiscardHandler), func(aws.Credentials) string { return "test source" })
			var got []call
			r.onRefresh = func(ok bool, expires time.Time) { got = append(got, call{ok, expires}) }
			for range tc.script {
				_, _ = r.Retrieve(context.Background())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("hook calls %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].ok != tc.want[i].ok || !got[i].expires.Equal(tc.want[i].expires) {
					t.Errorf("call %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
