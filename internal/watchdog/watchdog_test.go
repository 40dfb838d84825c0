package watchdog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type observed struct {
	mu  sync.Mutex
	ops map[string]time.Duration
}

func (o *observed) ObserveOp(op string, took time.Duration) {
	o.mu.Lock()
	o.ops[op] += took
	o.mu.Unlock()
}

func TestTracker(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	var log bytes.Buffer
	obs := &observed{ops: map[string]time.Duration{}}
	tr := New(Config{StuckAfter: 10 * time.Second, Patience: map[string]time.Duration{"flush": time.Hour},
		Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil)), Observer: obs})

	read := tr.Begin("read", [3]string{"b/big.bin"}, 1000, 42)
	clk.add(4 * time.Second)
	// Each operation has its goroutine: the stuck read's is this one.
	var lookup, flush *Op
	began := make(chan struct{})
	go func() {
		lookup = tr.Begin("lookup", [3]string{"b/x"}, 1001, 43)
		flush = tr.Begin("flush", [3]string{"b/out.csv"}, 1000, 44)
		close(began)
	}()
	<-began
	clk.add(2 * time.Second) // read 6s, lookup and flush 2s

	steps := []struct {
		name       string
		advance    time.Duration
		end        *Op
		inFlight   int
		stuck      int
		stuckTotal int64
		slow       []string // Older(5s), oldest first
		logs       int      // "operation stuck" lines so far
		dumps      int
	}{
		{"nothing stuck yet", 0, nil, 3, 0, 0, []string{"read"}, 0, 0},
		{"read stuck", 5 * time.Second, nil, 3, 1, 1, []string{"read", "lookup", "flush"}, 1, 1},
		{"reported once", 5 * time.Second, nil, 3, 2, 2, []string{"read", "lookup", "flush"}, 2, 1},
		{"dump at most once a minute", 10 * time.Second, nil, 3, 2, 2, []string{"read", "lookup", "flush"}, 2, 1},
		{"patience for uploads", 0, lookup, 2, 1, 2, []string{"read", "flush"}, 2, 1},
	}
	for _, s := range steps {
		clk.add(s.advance)
		if s.end != nil {
			tr.End(s.end)
		}
		tr.Check()
		if n := tr.InFlight(); n != s.inFlight {
			t.Errorf("%s: in flight %d, want %d", s.name, n, s.inFlight)
		}
		if n := tr.Stuck(); n != s.stuck {
			t.Errorf("%s: stuck %d, want %d", s.name, n, s.stuck)
		}
		if n := tr.StuckTotal(); n != s.stuckTotal {
			t.Errorf("%s: stuck total %d, want %d", s.name, n, s.stuckTotal)
		}
		var names []string
		for _, i := range tr.Older(5 * time.Second) {
			names = append(names, i.Op)
		}
		if strings.Join(names, ",") != strings.Join(s.slow, ",") {
			t.Errorf("%s: older than 5s %v, want %v", s.name, names, s.slow)
		}
		if n := strings.Count(log.String(), `msg="operation stuck`); n != s.logs {
			t.Errorf("%s: %d stuck lines, want %d:\n%s", s.name, n, s.logs, log.String())
		}
		if n := strings.Count(log.String(), `msg="goroutine dump`); n != s.dumps {
			t.Errorf("%s: %d dumps, want %d", s.name, n, s.dumps)
		}
	}
	// The stuck line names the op, its caller and what it waits for: the
	// stack of the goroutine that began it (this test's).
	first := strings.SplitN(log.String(), "\n", 2)[0]
	for _, want := range []string{"op=read", "path=b/big.bin", "uid=1000", "pid=42", "TestTracker"} {
		if !strings.Contains(first, want) {
			t.Errorf("stuck line lacks %q: %s", want, first)
		}
	}
	tr.End(read)
	if !strings.Contains(log.String(), `msg="stuck operation finished" op=read`) {
		t.Errorf("no line when the stuck read finished:\n%s", log.String())
	}
	tr.End(flush)
	if tr.InFlight() != 0 || tr.Stuck() != 0 {
		t.Errorf("after every End: in flight %d, stuck %d", tr.InFlight(), tr.Stuck())
	}
	if obs.ops["read"] != 26*time.Second || obs.ops["lookup"] != 22*time.Second {
		t.Errorf("observed durations %v", obs.ops)
	}
}

func TestStacksOf(t *testing.T) {
	profile := []byte("goroutine profile: total 4\n1 @ 0x1 0x2\n# labels: {\"bucketfs_op\":\"4\"}\n#\t0x1\tmain.a+0x1\ta.go:1\n\n" +
		"2 @ 0x3\n# labels: {\"bucketfs_op\":\"42\"}\n#\t0x3\tmain.b+0x1\tb.go:1\n\n" +
		"1 @ 0x4\n#\t0x4\tmain.c+0x1\tc.go:1\n")
	for _, tc := range []struct {
		id   uint64
		want string
	}{
		{4, "1 @ 0x1 0x2\n# labels: {\"bucketfs_op\":\"4\"}\n#\t0x1\tmain.a+0x1\ta.go:1"},
		{42, "2 @ 0x3\n# labels: {\"bucketfs_op\":\"42\"}\n#\t0x3\tmain.b+0x1\tb.go:1"},
		{5, "(no goroutine serves it any more)"},
	} {
		if got := string(stacksOf(profile, tc.id)); got != tc.want {
			t.Errorf("stacksOf(%d) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func BenchmarkBeginEnd(b *testing.B) {
	tr := New(Config{StuckAfter: time.Minute})
	for b.Loop() {
		tr.End(tr.Begin("lookup", [3]string{"b/k"}, 1, 2))
	}
}
