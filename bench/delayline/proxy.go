package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every TCP connection it accepts to Target and gives the
// path the shape of a long-haul network: each chunk of bytes read from one
// side is written to the other Delay later, each direction of each
// connection carries at most Rate bytes per second, and all connections
// together carry at most TotalRate bytes per second in each direction (a
// host's network interface, which every connection shares).
type Proxy struct {
	Target    string
	Delay     time.Duration
	Rate      int64 // bytes per second per direction per connection; 0 = no cap
	TotalRate int64 // bytes per second per direction, all connections together; 0 = no cap
	Log       *slog.Logger

	// The shared caps of TotalRate, one per direction; set by Serve.
	totalUp, totalDown *sharedBucket

	conns    atomic.Int64 // connections accepted so far
	upload   atomic.Int64 // bytes client -> target
	download atomic.Int64 // bytes target -> client
}

const (
	// chunkSize is the most one read takes from a socket. Large enough that
	// a few goroutines move gigabytes per second, small enough that the rate
	// cap stays smooth.
	chunkSize = 128 << 10
	// minInFlight bounds the bytes queued in one direction when the
	// receiver stops reading; it must exceed Rate*Delay (the bytes "on the
	// wire") or the queue itself would cap the throughput below Rate.
	minInFlight = 4 << 20
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Stats reports totals since the proxy started.
func (p *Proxy) Stats() (conns, upload, download int64) {
	return p.conns.Load(), p.upload.Load(), p.download.Load()
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// open connection and returns once all of them are done.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p.totalUp, p.totalDown = newSharedBucket(p.TotalRate), newSharedBucket(p.TotalRate)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		p.conns.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.handle(ctx, c); err != nil {
				log.Debug("connection ended", "client", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// handle connects client to the target and runs one delayed pipe each way.
func (p *Proxy) handle(ctx context.Context, client net.Conn) error {
	defer client.Close()
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", p.Target)
	if err != nil {
		return err
	}
	defer server.Close()
	for _, c := range []net.Conn{client, server} {
		if tc, ok := c.(*net.TCPConn); ok {
			// Chunks leave at their due time; Nagle would hold small
			// ones back for another round trip.
			tc.SetNoDelay(true)
		}
	}
	// Tear both sockets down when the proxy stops, so blocked reads end.
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		server.Close()
	})
	defer stop()

	errc := make(chan error, 2)
	go func() { errc <- p.pipe(client, server, &p.upload, p.totalUp) }()
	go func() { errc <- p.pipe(server, client, &p.download, p.totalDown) }()
	err1 := <-errc
	if err1 != nil {
		// One direction broke: the connection is dead, end the other
		// direction too instead of waiting for a peer that will not send.
		client.Close()
		server.Close()
	}
	err2 := <-errc
	return errors.Join(err1, err2)
}

// chunk is a piece of the byte stream with the time it may be written.
type chunk struct {
	buf  *[]byte
	n    int
	due  time.Time
	done bool  // end of stream: no more chunks follow
	err  error // why the stream ended; nil for a clean EOF
}

// pipe copies src to dst. A reader goroutine takes bytes from src as fast as
// the rate cap allows and stamps each chunk with due = now+Delay; the writer
// (this goroutine) writes each chunk at its due time, in order. Because the
// queue holds many chunks, a chunk's delay overlaps with the ones before it:
// the stream is late by Delay, not by Delay per chunk. total is the cap
// this direction shares with every other connection.
func (p *Proxy) pipe(src, dst net.Conn, count *atomic.Int64, total *sharedBucket) error {
	inFlight := int64(minInFlight)
	if bdp := 2 * p.Rate * int64(p.Delay) / int64(time.Second); bdp > inFlight {
		inFlight = bdp
	}
	b := newBudget(inFlight)
	// A chunk is at least a byte, so this many entries always fit the budget.
	q := make(chan chunk, 1024)
	go p.read(src, q, b, total)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var werr error
	for c := range q {
		if werr == nil {
			if wait := time.Until(c.due); wait > 0 {
				timer.Reset(wait)
				<-timer.C
			}
		}
		if c.done {
			if werr != nil {
				return werr
			}
			if c.err != nil {
				return c.err
			}
			// Pass the half-close on: HTTP clients rarely use it, but a
			// proxy that swallowed it would hang those that do.
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				return cw.CloseWrite()
			}
			return dst.Close()
		}
		if werr == nil {
			if _, err := dst.Write((*c.buf)[:c.n]); err != nil {
				// Keep draining so the reader is never stuck on a
				// full queue; closing src makes it stop soon.
				werr = err
				src.Close()
			} else {
				count.Add(int64(c.n))
			}
		}
		b.release(int64(c.n))
		bufPool.Put(c.buf)
	}
	return werr
}

// read fills q from src until src ends; it closes q.
func (p *Proxy) read(src net.Conn, q chan<- chunk, b *budget, total *sharedBucket) {
	defer close(q)
	tb := newTokenBucket(p.Rate)
	for {
		buf := bufPool.Get().(*[]byte)
		b.acquire(chunkSize)
		n, err := src.Read(*buf)
		b.release(int64(chunkSize - n))
		if n > 0 {
			tb.wait(n)
			total.wait(n)
			q <- chunk{buf: buf, n: n, due: time.Now().Add(p.Delay)}
		} else {
			bufPool.Put(buf)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			q <- chunk{done: true, err: err, due: time.Now().Add(p.Delay)}
			return
		}
	}
}

// budget bounds the bytes queued in one direction.
type budget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	avail int64
}

func newBudget(n int64) *budget {
	b := &budget{avail: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *budget) acquire(n int64) {
	b.mu.Lock()
	for b.avail < n {
		b.cond.Wait()
	}
	b.avail -= n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.avail += n
	b.mu.Unlock()
	b.cond.Signal()
}

// tokenBucket paces one direction of one connection. It is used by one
// goroutine only. Tokens may go negative (a read larger than the burst): the
// debt is paid by sleeping, so the long-run rate is exact.
type tokenBucket struct {
	rate   float64 // bytes per second; 0 = unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate int64) *tokenBucket {
	// A burst of 4 ms of traffic keeps the pacing smooth at 100 MB/s
	// without a sleep for every read.
	burst := max(float64(rate)/250, 32<<10)
	return &tokenBucket{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

func (t *tokenBucket) wait(n int) {
	if d := t.take(time.Now(), n); d > 0 {
		time.Sleep(d)
	}
}

// take spends n bytes' tokens at now and returns how long the caller must
// sleep to pay what it borrowed (0 if nothing). The debt stays on the
// bucket, so whoever takes next waits for it too: takers are served in
// the order they came, at the rate exactly.
func (t *tokenBucket) take(now time.Time, n int) time.Duration {
	if t.rate <= 0 {
		return 0
	}
	t.tokens = min(t.burst, t.tokens+now.Sub(t.last).Seconds()*t.rate)
	t.last = now
	t.tokens -= float64(n)
	if t.tokens >= 0 {
		return 0
	}
	return time.Duration(-t.tokens / t.rate * float64(time.Second))
}

// sharedBucket is a tokenBucket that every connection's reader of one
// direction takes from: the cap of a host's network interface, which all
// of its connections share. A nil one caps nothing.
type sharedBucket struct {
	mu sync.Mutex
	tb *tokenBucket
}

func newSharedBucket(rate int64) *sharedBucket {
	if rate <= 0 {
		return nil
	}
	return &sharedBucket{tb: newTokenBucket(rate)}
}

// wait blocks until n more bytes fit under the shared cap. The lock is
// held only to take the tokens, not for the sleep.
func (s *sharedBucket) wait(n int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	d := s.tb.take(time.Now(), n)
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}
