package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"sort"
	"sync"
	"testing"
	"time"
)

// startProxy runs a Proxy in front of target and returns its address.
func startProxy(t testing.TB, target string, delay time.Duration, rate int64) (string, *Proxy) {
	t.Helper()
	p := &Proxy{Target: target, Delay: delay, Rate: rate}
	return serve(t, p), p
}

// serve runs p on a loopback port until the test ends and returns its
// address.
func serve(t testing.TB, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startServer accepts connections and runs handle on each until the test ends.
func startServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echo copies everything back, then half-closes.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// TestLatency measures a small request/response round trip through the
// proxy: it must cost the delay of both directions, and not much more.
func TestLatency(t *testing.T) {
	for _, delay := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			addr, _ := startProxy(t, startServer(t, echo), delay, 100e6)
			c := dial(t, addr)
			msg := []byte("ping")
			buf := make([]byte, len(msg))
			var rtts []time.Duration
			for i := 0; i < 7; i++ {
				start := time.Now()
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					t.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
			if want := 2 * delay; rtts[0] < want {
				t.Errorf("fastest round trip %v, want at least %v", rtts[0], want)
			}
			// Slack for a loaded 2-core machine under -race.
			if limit := 2*delay + 25*time.Millisecond; rtts[len(rtts)/2] > limit {
				t.Errorf("median round trip %v, want at most %v (all: %v)", rtts[len(rtts)/2], limit, rtts)
			}
		})
	}
}

// TestDelayIsNotPerChunk sends many small chunks, 2 ms apart, through a
// 50 ms delay line: they must arrive about 50 ms after they were sent, not
// with the delays added up one after another.
func TestDelayIsNotPerChunk(t *testing.T) {
	const (
		delay  = 50 * time.Millisecond
		chunks = 40
		gap    = 2 * time.Millisecond
	)
	arrived := make(chan time.Time, 1)
	target := startServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		total := 0
		for total < chunks {
			n, err := c.Read(buf)
			total += n
			if err != nil {
				break
			}
		}
		arrived <- time.Now()
	})
	addr, _ := startProxy(t, target, delay, 0)
	c := dial(t, addr)
	start := time.Now()
	var lastWrite time.Time
	for i := 0; i < chunks; i++ {
		lastWrite = time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
	// The last chunk left at lastWrite (the sleep after it may overrun
	// gap, so the time after the loop is no measure of it).
	sent := lastWrite.Sub(start)
	var last time.Time
	select {
	case last = <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the chunks never all arrived")
	}
	took := last.Sub(start)
	if took < sent+delay {
		t.Errorf("last chunk arrived %v after the first was sent, want at least %v", took, sent+delay)
	}
	if limit := sent + delay + 60*time.Millisecond; took > limit {
		t.Errorf("last chunk arrived %v after the first was sent, want at most %v: delays add up per chunk", took, limit)
	}
}

// TestRateCap pushes bytes one way, in each direction, through a capped
// connection and checks the measured rate.
func TestRateCap(t *testing.T) {
	const (
		rate = 40e6 // bytes per second
		size = 16 << 20
	)
	payload := make([]byte, size)
	tests := []struct {
		name     string
		download bool // the server sends, the client receives
	}{
		{"to target", false},
		{"from target", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := startServer(t, func(c net.Conn) {
				if tc.download {
					c.Write(payload)
					return
				}
				io.Copy(io.Discard, c)
			})
			addr, p := startProxy(t, target, time.Millisecond, rate)
			c := dial(t, addr)
			start := time.Now()
			if tc.download {
				n, err := io.Copy(io.Discard, c)
				if err != nil || n != size {
					t.Fatalf("read %d bytes, %v; want %d", n, err, size)
				}
			} else {
				if _, err := c.Write(payload); err != nil {
					t.Fatal(err)
				}
				c.CloseWrite()
				// The server closes once it has everything.
				io.Copy(io.Discard, c)
			}
			elapsed := time.Since(start)
			got := float64(size) / elapsed.Seconds()
			if got > rate*1.1 {
				t.Errorf("rate %.1f MB/s, cap is %.1f MB/s", got/1e6, rate/1e6)
			}
			// Far below the cap means the proxy itself is slow.
			if got < rate*0.4 {
				t.Errorf("rate %.1f MB/s, want near the cap %.1f MB/s", got/1e6, rate/1e6)
			}
			_, up, down := p.Stats()
			if moved := map[bool]int64{false: up, true: down}[tc.download]; moved != size {
				t.Errorf("proxy counted %d bytes, want %d", moved, size)
			}
		})
	}
}

// TestTotalRateCap downloads on several connections at once through a
// proxy whose connections are not capped one by one but together
// (TotalRate): the aggregate rate must stay at the cap, and every
// connection must get its share (none starved).
func TestTotalRateCap(t *testing.T) {
	const (
		total = 40e6 // bytes per second, all connections
		conns = 4
		size  = 4 << 20 // per connection
	)
	payload := make([]byte, size)
	target := startServer(t, func(c net.Conn) { c.Write(payload) })
	p := &Proxy{Target: target, TotalRate: total}
	a := serve(t, p)
	var wg sync.WaitGroup
	took := make([]time.Duration, conns)
	start := time.Now()
	for i := range conns {
		c := dial(t, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := io.Copy(io.Discard, c); err != nil || n != size {
				t.Errorf("connection %d read %d bytes, %v; want %d", i, n, err, size)
			}
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := float64(conns*size) / elapsed.Seconds()
	if got > total*1.1 {
		t.Errorf("aggregate %.1f MB/s, total cap is %.1f MB/s", got/1e6, total/1e6)
	}
	if got < total*0.4 {
		t.Errorf("aggregate %.1f MB/s, want near the total cap %.1f MB/s", got/1e6, total/1e6)
	}
	// Shared fairly: no connection finishes before it had half the time
	// the cap allows for its bytes alone at an equal share.
	for i, d := range took {
		if least := time.Duration(float64(size) / (total / conns) * 0.5 * float64(time.Second)); d < least {
			t.Errorf("connection %d done after %v, want at least %v: it took more than its share", i, d, least)
		}
	}
	if _, _, down := p.Stats(); down != conns*size {
		t.Errorf("proxy counted %d bytes, want %d", down, conns*size)
	}
}

// TestTokenBucketTake drives the token bucket with an injected clock: the
// waits it asks for must add up to the bytes at the rate, whoever takes.
func TestTokenBucketTake(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at   time.Time
		n    int
		want time.Duration
	}
	tests := []struct {
		name  string
		rate  int64
		steps []step
	}{
		{"no cap", 0, []step{{ms(0), 1 << 30, 0}}},
		// 1 MB/s: the burst is 32 KiB (rate/250 is smaller), spent at once.
		{"burst then debt", 1e6, []step{
			{ms(0), 32 << 10, 0},
			{ms(0), 1000, time.Millisecond},
			// A second taker at the same instant waits for both debts.
			{ms(0), 1000, 2 * time.Millisecond},
			// 2 ms later the debt is paid.
			{ms(2), 1000, time.Millisecond},
		}},
		{"idle refills only the burst", 1e6, []step{
			{ms(0), 32 << 10, 0},
			{ms(10_000), 32 << 10, 0},
			{ms(10_000), 10_000, 10 * time.Millisecond},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTokenBucket(tc.rate)
			tb.last = t0
			for i, s := range tc.steps {
				got := tb.take(s.at, s.n)
				if d := got - s.want; d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("step %d: take(%d) waits %v, want %v", i, s.n, got, s.want)
				}
			}
		})
	}
	if newSharedBucket(0) != nil {
		t.Error("newSharedBucket(0) caps something; want nil (no cap)")
	}
}

// TestBytesIntact echoes random bytes through a delayed, capped proxy on
// several connections at once and compares digests; it also checks that a
// half-close reaches the server and the server's EOF reaches the client.
func TestBytesIntact(t *testing.T) {
	addr, _ := startProxy(t, startServer(t, echo), 3*time.Millisecond, 200e6)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		size := (1 << 20) + i*12345
		data := make([]byte, size)
		rand.Read(data)
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got bytes.Buffer
			readDone := make(chan error, 1)
			go func() {
				_, err := io.Copy(&got, c)
				readDone <- err
			}()
			// Odd-sized writes so chunk boundaries fall everywhere.
			for off := 0; off < len(data); off += 7919 {
				if _, err := c.Write(data[off:min(off+7919, len(data))]); err != nil {
					t.Error(err)
					return
				}
			}
			c.CloseWrite()
			if err := <-readDone; err != nil {
				t.Error(err)
				return
			}
			if sha256.Sum256(got.Bytes()) != sha256.Sum256(data) {
				t.Errorf("echoed %d bytes differ from the %d sent", got.Len(), len(data))
			}
		}()
	}
	wg.Wait()
}

// TestTargetDown: a connection to a dead target is closed, not left hanging.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	addr, _ := startProxy(t, dead, time.Millisecond, 0)
	c := dial(t, addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("read from a proxied dead target: %d, %v; want EOF", n, err)
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"100MB", 100e6, false},
		{"100MiB", 100 << 20, false},
		{"1GB/s", 1e9, false},
		{"0", 0, false},
		{"4096", 4096, false},
		{"fast", 0, true},
		{"-1MB", 0, true},
	}
	for _, tc := range tests {
		got, err := parseRate(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parseRate(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestRequireLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:80", true},
		{"127.1.2.3:80", true},
		{"[::1]:80", true},
		{"localhost:80", true},
		{"10.0.0.1:80", false},
		{"example.com:80", false},
		{":80", false},
		{"127.0.0.1", false},
	}
	for _, tc := range tests {
		if err := requireLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("requireLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

// BenchmarkAggregate moves data through 16 delayed, uncapped connections at
// once and reports the aggregate rate: the proxy must not be what limits a
// benchmark (goal: well over 1 GB/s on two cores).
func BenchmarkAggregate(b *testing.B) {
	const conns, per = 16, 64 << 20
	payload := make([]byte, per)
	target := startServer(b, func(c net.Conn) {
		for {
			if _, err := c.Read(make([]byte, 1)); err != nil {
				return
			}
			if _, err := c.Write(payload); err != nil {
				return
			}
		}
	})
	addr, _ := startProxy(b, target, 10*time.Millisecond, 0)
	cs := make([]*net.TCPConn, conns)
	for i := range cs {
		cs[i] = dial(b, addr)
	}
	b.SetBytes(conns * per)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Write([]byte{1})
				if _, err := io.CopyN(io.Discard, c, per); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
}
