// Package faultproxy is an HTTP reverse proxy for tests that sits in front of
// an S3 server (versitygw) on 127.0.0.1 and breaks a chosen share of the
// requests the way networks and servers break: 503 SlowDown, 500
// InternalError, a connection reset in the middle of a body, a body cut short
// of its Content-Length, or a body that stalls for a while. It can also play
// a full outage (connections refused, or accepted and never answered).
//
// Which requests fail, and how, is drawn from a random source seeded by
// Config.Seed, so a run with the same seed makes the same sequence of
// decisions (the order in which concurrent requests arrive may still vary).
package faultproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is one way of breaking a request.
type Kind int

// The faults. Those that act on a body (Reset, Truncate, Stall) cut it after
// Config.AfterBytes bytes.
const (
	// SlowDown answers 503 with an S3 SlowDown error, without asking the
	// server.
	SlowDown Kind = iota
	// InternalError answers 500 with an S3 InternalError, without asking
	// the server.
	InternalError
	// Reset sends the server's status, headers and the first bytes of the
	// body, then resets the TCP connection (RST).
	Reset
	// Truncate sends the server's headers (with the full Content-Length)
	// and part of the body, then closes the connection cleanly (FIN).
	Truncate
	// Stall sends part of the body, stops for Config.StallFor (or until the
	// client gives up), then sends the rest.
	Stall
	numKinds
)

// AllKinds lists every fault kind.
var AllKinds = []Kind{SlowDown, InternalError, Reset, Truncate, Stall}

func (k Kind) String() string {
	switch k {
	case SlowDown:
		return "slowdown"
	case InternalError:
		return "internal-error"
	case Reset:
		return "reset"
	case Truncate:
		return "truncate"
	case Stall:
		return "stall"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for _, k := range AllKinds {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown fault kind %q (want one of slowdown, internal-error, reset, truncate, stall)", s)
}

// Outage is a state of the whole proxy.
type Outage int

const (
	// Up: requests are forwarded (and some broken, per Config).
	Up Outage = iota
	// Refuse closes the listening socket and every open connection:
	// clients get "connection refused" until the outage ends.
	Refuse
	// Blackhole accepts connections and reads requests but never answers;
	// when the outage ends the held connections are closed.
	Blackhole
)

// Config says where to forward and what to break.
type Config struct {
	// Target is the server's base URL, e.g. http://127.0.0.1:7070. It must
	// be on a loopback address.
	Target string
	// Rate is the share (0 to 1) of matching requests that get a fault.
	Rate float64
	// Kinds are the faults to choose from, uniformly; empty means all.
	Kinds []Kind
	// Methods limits faults to these HTTP methods; empty means all.
	Methods []string
	// Match, when set, limits faults to requests for which it is true (for
	// example only GETs with a Range header, or one bucket's paths).
	Match func(*http.Request) bool
	// AfterBytes is where Reset, Truncate and Stall cut the body: after
	// this many bytes when positive (at most the body's length minus one),
	// else at a random point of the body.
	AfterBytes int64
	// StallFor is how long Stall stops; 0 means 5s.
	StallFor time.Duration
	// Seed seeds the decisions.
	Seed uint64
}

// Stats counts what the proxy did.
type Stats struct {
	Requests int64          // requests received (outage or not)
	Faults   map[Kind]int64 // faults injected, by kind
	Held     int64          // requests held by a Blackhole outage
}

// Total is the number of injected faults of all kinds.
func (s Stats) Total() int64 {
	var n int64
	for _, v := range s.Faults {
		n += v
	}
	return n
}

func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests", s.Requests)
	for _, k := range AllKinds {
		fmt.Fprintf(&b, ", %s %d", k, s.Faults[k])
	}
	if s.Held > 0 {
		fmt.Fprintf(&b, ", held %d", s.Held)
	}
	return b.String()
}

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	target *url.URL
	addr   string // 127.0.0.1:PORT, kept across Refuse outages
	srv    *http.Server
	tr     *http.Transport

	mu      sync.Mutex
	cfg     Config
	rng     *rand.Rand
	outage  Outage
	ln      net.Listener
	conns   map[net.Conn]struct{}
	healed  chan struct{} // closed when a Blackhole outage ends
	closed  bool
	serving sync.WaitGroup

	requests, held atomic.Int64
	faults         [numKinds]atomic.Int64
}

// Start listens on a free port of 127.0.0.1 and serves until Close.
func Start(cfg Config) (*Proxy, error) {
	t, err := url.Parse(cfg.Target)
	if err != nil || t.Host == "" {
		return nil, fmt.Errorf("faultproxy: bad target %q", cfg.Target)
	}
	if ip := net.ParseIP(t.Hostname()); (ip == nil || !ip.IsLoopback()) && t.Hostname() != "localhost" {
		return nil, fmt.Errorf("faultproxy: target %s is not a loopback address", t.Host)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target: t,
		addr:   ln.Addr().String(),
		conns:  map[net.Conn]struct{}{},
		healed: make(chan struct{}),
		tr: &http.Transport{
			Proxy:               nil, // never through a proxy from the environment
			DisableCompression:  true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.setConfigLocked(cfg)
	p.srv = &http.Server{
		Handler:   p,
		ConnState: p.connState,
		// The server's own idle timeout keeps a test's leftovers short-lived.
		IdleTimeout: time.Minute,
	}
	p.ln = ln
	p.serve(ln)
	return p, nil
}

func (p *Proxy) serve(ln net.Listener) {
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		_ = p.srv.Serve(ln)
	}()
}

// URL is the proxy's base URL, to use as the S3 endpoint.
func (p *Proxy) URL() string { return "http://" + p.addr }

// SetConfig replaces the fault configuration (Target is ignored) and
// reseeds the decisions.
func (p *Proxy) SetConfig(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setConfigLocked(cfg)
}

func (p *Proxy) setConfigLocked(cfg Config) {
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = AllKinds
	}
	if cfg.StallFor <= 0 {
		cfg.StallFor = 5 * time.Second
	}
	p.cfg = cfg
	p.rng = rand.New(rand.NewPCG(cfg.Seed, 0x6661756c74))
}

// SetRate changes only the share of requests that get a fault.
func (p *Proxy) SetRate(rate float64) {
	p.mu.Lock()
	p.cfg.Rate = rate
	p.mu.Unlock()
}

// SetOutage switches the proxy into an outage or back Up.
func (p *Proxy) SetOutage(o Outage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || o == p.outage {
		return nil
	}
	prev := p.outage
	p.outage = o
	switch prev {
	case Refuse:
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.outage = prev
			return fmt.Errorf("faultproxy: listening again on %s: %w", p.addr, err)
		}
		p.ln = ln
		p.serve(ln)
	case Blackhole:
		close(p.healed)
		p.healed = make(chan struct{})
	}
	if o == Refuse {
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
	}
	return nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	s := Stats{Requests: p.requests.Load(), Held: p.held.Load(), Faults: map[Kind]int64{}}
	for _, k := range AllKinds {
		s.Faults[k] = p.faults[k].Load()
	}
	return s
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.outage == Blackhole {
		close(p.healed)
	}
	p.mu.Unlock()
	err := p.srv.Close()
	p.serving.Wait()
	p.tr.CloseIdleConnections()
	return err
}

func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		if p.outage == Refuse {
			// Accepted just before the listener closed.
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
}

// decide draws whether r gets a fault, which one and where a body is cut.
// cut < 0 means "pick a random point once the body's length is known".
func (p *Proxy) decide(r *http.Request) (fault bool, k Kind, after int64, stall time.Duration, outage Outage, healed chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	outage, healed = p.outage, p.healed
	cfg := p.cfg
	if outage != Up || cfg.Rate <= 0 || !cfg.matches(r) {
		return false, 0, 0, 0, outage, healed
	}
	if p.rng.Float64() >= cfg.Rate {
		return false, 0, 0, 0, outage, healed
	}
	k = cfg.Kinds[p.rng.IntN(len(cfg.Kinds))]
	after = cfg.AfterBytes
	if after <= 0 {
		// A fraction of the body, drawn now so the sequence of
		// decisions depends on the seed alone.
		after = -1 - int64(p.rng.Uint32())
	}
	return true, k, after, cfg.StallFor, outage, healed
}

func (c Config) matches(r *http.Request) bool {
	if len(c.Methods) > 0 {
		ok := false
		for _, m := range c.Methods {
			if strings.EqualFold(m, r.Method) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return c.Match == nil || c.Match(r)
}

// cutPoint turns the drawn cut into a byte count below size.
func cutPoint(after, size int64) int64 {
	if size <= 0 {
		return 0
	}
	if after >= 0 {
		return min(after, size-1)
	}
	frac := float64(-1-after) / float64(1<<32)
	return min(int64(frac*float64(size)), size-1)
}

// ServeHTTP forwards one request, breaking it if the dice say so.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	fault, kind, after, stallFor, outage, healed := p.decide(r)
	switch outage {
	case Blackhole:
		p.held.Add(1)
		select {
		case <-healed:
		case <-r.Context().Done():
		}
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return
	case Refuse:
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	if fault && (kind == SlowDown || kind == InternalError) {
		p.faults[kind].Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		status, code, msg := http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."
		if kind == InternalError {
			status, code, msg = http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again."
		}
		writeS3Error(w, r, status, code, msg)
		return
	}

	resp, err := p.forward(r)
	if err != nil {
		writeS3Error(w, r, http.StatusBadGateway, "BadGateway", "faultproxy: "+err.Error())
		return
	}
	defer resp.Body.Close()
	if !fault {
		copyHeader(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	p.faults[kind].Add(1)
	body := resp.Body
	size := resp.ContentLength
	if r.Method == http.MethodHead {
		size = 0
	} else if size < 0 {
		// A chunked body (listings may come so): read it whole to know
		// its length; such bodies are small.
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return
		}
		size = int64(len(data))
		body = io.NopCloser(strings.NewReader(string(data)))
	}
	p.rawReply(r.Context(), w, resp, body, size, cutPoint(after, size), kind, stallFor)
}

// forward sends r to the target and returns the server's response.
func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		return nil, err
	}
	copyHeader(out.Header, r.Header)
	// SigV4 signs the Host header: send the one the client signed.
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	return p.tr.RoundTrip(out)
}

// rawReply writes the response on the hijacked connection by hand, so the
// body can be cut, stalled or reset after n bytes. A response without a body
// (HEAD, empty) is broken before its headers: Reset and Truncate close the
// connection without an answer, Stall waits before answering.
func (p *Proxy) rawReply(ctx context.Context, w http.ResponseWriter, resp *http.Response, body io.Reader, size, n int64, kind Kind, stallFor time.Duration) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if kind == Reset {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // Close sends RST
		}
	}
	bw := buf.Writer
	head := func() error {
		fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
		h := resp.Header.Clone()
		h.Del("Transfer-Encoding")
		h.Set("Content-Length", fmt.Sprint(size))
		h.Set("Connection", "close")
		if resp.Request != nil && resp.Request.Method == http.MethodHead && resp.ContentLength >= 0 {
			h.Set("Content-Length", fmt.Sprint(resp.ContentLength))
		}
		if err := h.Write(bw); err != nil {
			return err
		}
		_, err := bw.WriteString("\r\n")
		return err
	}
	if size == 0 {
		if kind != Stall {
			return
		}
		if !wait(ctx, conn, stallFor) {
			return
		}
		if head() == nil {
			_ = bw.Flush()
		}
		return
	}
	if head() != nil {
		return
	}
	if _, err := io.CopyN(bw, body, n); err != nil {
		return
	}
	if err := bw.Flush(); err != nil {
		return
	}
	if kind != Stall {
		return // Reset: RST; Truncate: FIN before Content-Length bytes
	}
	if !wait(ctx, conn, stallFor) {
		return
	}
	if _, err := io.Copy(bw, body); err != nil {
		return
	}
	_ = bw.Flush()
}

// wait sleeps d on a hijacked connection and reports whether the client is
// still there.
func wait(ctx context.Context, conn net.Conn, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	// A read on the connection returns when the client closes it.
	gone := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(conn).ReadByte()
		close(gone)
	}()
	defer func() {
		_ = conn.SetReadDeadline(time.Now()) // stop the watcher
		<-gone
		_ = conn.SetReadDeadline(time.Time{})
	}()
	select {
	case <-t.C:
		return true
	case <-gone:
		return false
	case <-ctx.Done():
		return false
	}
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}

// writeS3Error answers with an S3-style XML error (no body for HEAD).
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Connection", "close")
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>`,
		code, msg, xmlEscape(r.URL.Path))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
