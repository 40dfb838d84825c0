package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// upstream is a fake server: every path answers body, and it records what
// reached it.
type upstream struct {
	mu    sync.Mutex
	seen  []string // method, request URI and Host of each request
	body  []byte
	srv   *httptest.Server
	count int
}

func newUpstream(t *testing.T, body []byte) *upstream {
	u := &upstream{body: body}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.RequestURI+" "+r.Host)
		u.count++
		u.mu.Unlock()
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(u.body)))
		if r.URL.Query().Get("chunked") != "" {
			w.Header().Del("Content-Length")
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(u.body)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func start(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	return b
}

// client gets a fresh connection per request, so a broken one cannot
// affect the next.
func client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}

func get(t *testing.T, c *http.Client, method, url string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestPassThrough(t *testing.T) {
	want := body(100_000)
	up := newUpstream(t, want)
	p := start(t, Config{Target: up.srv.URL, Rate: 0})
	c := client(5 * time.Second)
	// Escaping must reach the server as the client sent it (SigV4 signs it).
	const path = "/bkt/a%20b%2Bc%25d/%E2%9C%93?list-type=2&prefix=x%2Fy"
	resp, got, err := get(t, c, http.MethodGet, p.URL()+path)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("GET through the proxy: %v, %v, %d bytes equal=%v", resp, err, len(got), bytes.Equal(got, want))
	}
	if resp.Header.Get("ETag") != `"e1"` {
		t.Errorf("ETag header = %q", resp.Header.Get("ETag"))
	}
	host := strings.TrimPrefix(p.URL(), "http://")
	if w := "GET " + path + " " + host; up.seen[0] != w {
		t.Errorf("upstream saw %q, want %q", up.seen[0], w)
	}
	if s := p.Stats(); s.Requests != 1 || s.Total() != 0 {
		t.Errorf("stats = %v", s)
	}
}

func TestFaultKinds(t *testing.T) {
	want := body(10_000)
	up := newUpstream(t, want)
	const after = 1000
	tests := []struct {
		kind  Kind
		check func(t *testing.T, resp *http.Response, got []byte, err error, took time.Duration)
	}{
		{SlowDown, func(t *testing.T, resp *http.Response, got []byte, err error, _ time.Duration) {
			if err != nil || resp.StatusCode != 503 || !bytes.Contains(got, []byte("<Code>SlowDown</Code>")) {
				t.Errorf("got %v, %v, %q; want 503 SlowDown", resp, err, got)
			}
		}},
		{InternalError, func(t *testing.T, resp *http.Response, got []byte, err error, _ time.Duration) {
			if err != nil || resp.StatusCode != 500 || !bytes.Contains(got, []byte("<Code>InternalError</Code>")) {
				t.Errorf("got %v, %v, %q; want 500 InternalError", resp, err, got)
			}
		}},
		{Reset, func(t *testing.T, resp *http.Response, got []byte, err error, _ time.Duration) {
			if err == nil || len(got) > after || !bytes.Equal(got, want[:len(got)]) {
				t.Errorf("got %d bytes, err %v; want at most %d good bytes and an error", len(got), err, after)
			}
			if err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("reset surfaced as %v", err)
			}
		}},
		{Truncate, func(t *testing.T, resp *http.Response, got []byte, err error, _ time.Duration) {
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != after || !bytes.Equal(got, want[:after]) {
				t.Errorf("got %d bytes, err %v; want %d good bytes and unexpected EOF", len(got), err, after)
			}
		}},
		{Stall, func(t *testing.T, resp *http.Response, got []byte, err error, took time.Duration) {
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("got %d bytes, %v; want the whole body after the stall", len(got), err)
			}
			if took < 300*time.Millisecond {
				t.Errorf("stalled response took %v, want at least 300ms", took)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			p := start(t, Config{Target: up.srv.URL, Rate: 1, Kinds: []Kind{tc.kind}, AfterBytes: after, StallFor: 300 * time.Millisecond})
			begin := time.Now()
			resp, got, err := get(t, client(5*time.Second), http.MethodGet, p.URL()+"/b/k")
			tc.check(t, resp, got, err, time.Since(begin))
			if s := p.Stats(); s.Faults[tc.kind] != 1 || s.Total() != 1 {
				t.Errorf("stats = %v, want one %s", s, tc.kind)
			}
		})
	}
}

// A chunked body (no Content-Length) and a HEAD are broken too.
func TestFaultsWithoutLength(t *testing.T) {
	up := newUpstream(t, body(5000))
	p := start(t, Config{Target: up.srv.URL, Rate: 1, Kinds: []Kind{Truncate}})
	_, got, err := get(t, client(5*time.Second), http.MethodGet, p.URL()+"/b/k?chunked=1")
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) >= 5000 {
		t.Errorf("chunked GET: %d bytes, %v; want a cut body", len(got), err)
	}
	if _, _, err := get(t, client(5*time.Second), http.MethodHead, p.URL()+"/b/k"); err == nil {
		t.Errorf("HEAD with a truncate fault succeeded, want the connection closed without an answer")
	}
	p.SetConfig(Config{Rate: 1, Kinds: []Kind{Stall}, StallFor: 200 * time.Millisecond})
	begin := time.Now()
	resp, _, err := get(t, client(5*time.Second), http.MethodHead, p.URL()+"/b/k")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != 5000 || time.Since(begin) < 200*time.Millisecond {
		t.Errorf("stalled HEAD: %v, %v after %v; want 200 with Content-Length 5000 after 200ms", resp, err, time.Since(begin))
	}
}

// A client that gives up during a stall does not keep the proxy busy.
func TestStallClientGivesUp(t *testing.T) {
	up := newUpstream(t, body(5000))
	p, err := Start(Config{Target: up.srv.URL, Rate: 1, Kinds: []Kind{Stall}, AfterBytes: 10, StallFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, client(300*time.Millisecond), http.MethodGet, p.URL()+"/b/k"); err == nil {
		t.Fatal("a one-hour stall answered within 300ms")
	}
	done := make(chan error)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a stalled connection whose client left")
	}
}

func TestMethodFilterAndMatch(t *testing.T) {
	up := newUpstream(t, body(100))
	p := start(t, Config{Target: up.srv.URL, Rate: 1, Kinds: []Kind{InternalError}, Methods: []string{"GET"},
		Match: func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/bad/") }})
	c := client(5 * time.Second)
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/bad/k", 500},
		{"GET", "/good/k", 200},
		{"HEAD", "/bad/k", 200},
	}
	for _, tc := range tests {
		resp, _, err := get(t, c, tc.method, p.URL()+tc.path)
		if err != nil || resp.StatusCode != tc.want {
			t.Errorf("%s %s = %v, %v; want %d", tc.method, tc.path, resp, err, tc.want)
		}
	}
}

// The same seed gives the same decisions; another seed other decisions.
func TestDeterministic(t *testing.T) {
	up := newUpstream(t, body(2000))
	run := func(seed uint64) string {
		p := start(t, Config{Target: up.srv.URL, Rate: 0.3, Seed: seed, StallFor: time.Millisecond})
		c := client(5 * time.Second)
		var trace strings.Builder
		for i := 0; i < 60; i++ {
			before := p.Stats()
			get(t, c, http.MethodGet, p.URL()+"/b/k")
			after := p.Stats()
			mark := "."
			for _, k := range AllKinds {
				if after.Faults[k] != before.Faults[k] {
					mark = k.String()[:2]
				}
			}
			trace.WriteString(mark)
		}
		return trace.String()
	}
	a, b, c := run(1), run(1), run(2)
	t.Logf("seed 1: %s\nseed 2: %s", a, c)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("different seeds, same faults: %s", a)
	}
	if n := 60 - strings.Count(a, "."); n < 6 || n > 36 {
		t.Errorf("%d of 60 requests faulted at rate 0.3", n)
	}
}

func TestOutages(t *testing.T) {
	up := newUpstream(t, body(100))
	p := start(t, Config{Target: up.srv.URL})
	c := client(2 * time.Second)
	ok := func(when string) {
		t.Helper()
		if resp, _, err := get(t, c, "GET", p.URL()+"/b/k"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v, %v", when, resp, err)
		}
	}
	ok("before")

	if err := p.SetOutage(Refuse); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, c, "GET", p.URL()+"/b/k"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("during Refuse: %v, want connection refused", err)
	}
	if err := p.SetOutage(Up); err != nil {
		t.Fatal(err)
	}
	ok("after Refuse")

	if err := p.SetOutage(Blackhole); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	var ne interface{ Timeout() bool }
	if _, _, err := get(t, client(300*time.Millisecond), "GET", p.URL()+"/b/k"); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("during Blackhole: %v after %v, want a timeout", err, time.Since(begin))
	}
	// A request held when the outage ends fails (connection closed)
	// rather than hanging.
	held := make(chan error, 1)
	go func() {
		_, _, err := get(t, client(10*time.Second), "GET", p.URL()+"/b/k")
		held <- err
	}()
	for p.Stats().Held < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.SetOutage(Up); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-held:
		if err == nil {
			t.Errorf("a request held by the blackhole succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a held request still hangs after the outage ended")
	}
	ok("after Blackhole")
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.count != 3 {
		t.Errorf("upstream saw %d requests, want 3 (none during outages)", up.count)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, target := range []string{"http://192.0.2.1:80", "http://example.com", "::bad"} {
		if p, err := Start(Config{Target: target}); err == nil {
			p.Close()
			t.Errorf("Start(%q) succeeded, want an error", target)
		}
	}
}

func TestCutPoint(t *testing.T) {
	tests := []struct{ after, size, want int64 }{
		{100, 1000, 100},
		{5000, 1000, 999},
		{-1, 1000, 0},
		{-1 - (1 << 31), 1000, 500},
		{-(1 << 32), 1000, 999},
		{7, 0, 0},
	}
	for _, tc := range tests {
		if got := cutPoint(tc.after, tc.size); got != tc.want {
			t.Errorf("cutPoint(%d, %d) = %d, want %d", tc.after, tc.size, got, tc.want)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range AllKinds {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
	if _, err := ParseKind("nope"); err == nil {
		t.Error("ParseKind(nope) succeeded")
	}
}
