// Package watchdog keeps the list of file operations in flight on a mount
// (what, on which path, for which process, since when) and reports those
// that have been waiting for too long: once each at warn level with the
// stack of the goroutine serving it, plus, at most once a minute, a dump of
// every goroutine. A mount that stops answering then says what it waits for
// instead of leaving only a process in uninterruptible sleep.
//
// It knows nothing of FUSE: fs calls Begin and End around each request.
package watchdog

import (
	"bytes"
	"cmp"
	"context"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DumpEvery bounds full goroutine dumps in the log.
const DumpEvery = time.Minute

// Op is one operation in flight.
type Op struct {
	id       uint64
	Name     string    // the FUSE operation: read, lookup, readdir...
	Path     string    // bucket/key it is about
	UID, PID uint32    // the calling process and its user
	Start    time.Time // when the request arrived
	reported bool      // logged as stuck (under Tracker.mu)
}

// Observer receives the duration of every finished operation (metrics).
type Observer interface {
	ObserveOp(op string, took time.Duration)
}

// Config tunes a Tracker.
type Config struct {
	// StuckAfter is the age at which an operation is reported as stuck:
	// the request timeout plus a margin, since no operation of a healthy
	// mount waits longer than its store calls may.
	StuckAfter time.Duration
	// Patience overrides StuckAfter for some operations: those that may
	// rightly take long, such as a flush that uploads a large file.
	Patience map[string]time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Observer, if set, is told the duration of each finished operation.
	Observer Observer
}

// Tracker holds the operations in flight. Begin and End cost a map insert
// and delete under a mutex; the stacks are only read when something is
// stuck. It is safe for concurrent use.
type Tracker struct {
	cfg Config

	mu       sync.Mutex
	ops      map[uint64]*Op
	next     uint64
	lastDump time.Time

	stuckTotal atomic.Int64 // operations ever reported stuck
}

// New returns an empty Tracker.
func New(cfg Config) *Tracker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tracker{cfg: cfg, ops: make(map[uint64]*Op)}
}

// Begin records an operation starting now on the calling goroutine; pass
// the result to End, on the same goroutine, when it is answered. The
// goroutine carries the operation's id as a profiler label until then, so
// its stack can be found when it is stuck (goroutines it starts inherit
// the label: their stacks are shown too).
func (t *Tracker) Begin(name, path string, uid, pid uint32) *Op {
	op := &Op{Name: name, Path: path, UID: uid, PID: pid, Start: t.cfg.Now()}
	t.mu.Lock()
	t.next++
	op.id = t.next
	t.ops[op.id] = op
	t.mu.Unlock()
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(label, strconv.FormatUint(op.id, 10))))
	return op
}

// label is the profiler label that names the operation a goroutine serves.
const label = "bucketfs_op"

// End records that op was answered.
func (t *Tracker) End(op *Op) {
	pprof.SetGoroutineLabels(context.Background())
	t.mu.Lock()
	delete(t.ops, op.id)
	reported := op.reported
	t.mu.Unlock()
	took := t.cfg.Now().Sub(op.Start)
	if reported {
		t.cfg.Logger.Warn("stuck operation finished", "op", op.Name, "path", op.Path, "pid", op.PID, "took", took.Round(time.Millisecond))
	}
	if t.cfg.Observer != nil {
		t.cfg.Observer.ObserveOp(op.Name, took)
	}
}

// Info is a copy of an Op for reports.
type Info struct {
	Op      string  `json:"op"`
	Path    string  `json:"path"`
	UID     uint32  `json:"uid"`
	PID     uint32  `json:"pid"`
	Seconds float64 `json:"seconds"` // how long it has been in flight
}

// Older lists the operations in flight for at least d, oldest first.
func (t *Tracker) Older(d time.Duration) []Info {
	now := t.cfg.Now()
	var ops []Op
	t.mu.Lock()
	for _, op := range t.ops {
		if now.Sub(op.Start) >= d {
			ops = append(ops, *op)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(ops, func(a, b Op) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]Info, len(ops))
	for i, op := range ops {
		out[i] = Info{Op: op.Name, Path: op.Path, UID: op.UID, PID: op.PID, Seconds: now.Sub(op.Start).Seconds()}
	}
	return out
}

// InFlight is the number of operations in flight.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ops)
}

// Stuck is the number of operations in flight for longer than they may
// take (StuckAfter, or their Patience).
func (t *Tracker) Stuck() int {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, op := range t.ops {
		if now.Sub(op.Start) >= t.stuckAfter(op.Name) {
			n++
		}
	}
	return n
}

func (t *Tracker) stuckAfter(op string) time.Duration {
	if d, ok := t.cfg.Patience[op]; ok {
		return d
	}
	return t.cfg.StuckAfter
}

// StuckTotal is how many operations have been reported stuck since start.
func (t *Tracker) StuckTotal() int64 { return t.stuckTotal.Load() }

// Check reports the operations that became stuck since the last call:
// each once, at warn level, with the stack of its goroutine; and, when
// there are any and none was written in the last DumpEvery, a dump of
// every goroutine.
func (t *Tracker) Check() {
	now := t.cfg.Now()
	var fresh []Op
	t.mu.Lock()
	for _, op := range t.ops {
		if !op.reported && now.Sub(op.Start) >= t.stuckAfter(op.Name) {
			op.reported = true
			fresh = append(fresh, *op)
		}
	}
	dump := len(fresh) > 0 && (t.lastDump.IsZero() || now.Sub(t.lastDump) >= DumpEvery)
	if dump {
		t.lastDump = now
	}
	t.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	t.stuckTotal.Add(int64(len(fresh)))
	var labelled bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&labelled, 1) // a bytes.Buffer takes every write
	for _, op := range fresh {
		t.cfg.Logger.Warn("operation stuck: no answer yet; the process that made it waits",
			"op", op.Name, "path", op.Path, "uid", op.UID, "pid", op.PID,
			"waiting", now.Sub(op.Start).Round(time.Second), "stack", string(stacksOf(labelled.Bytes(), op.id)))
	}
	if dump {
		t.cfg.Logger.Warn("goroutine dump (at most one a minute, while operations are stuck)", "goroutines", string(allStacks()))
	}
}

// Run calls Check every interval until ctx ends.
func (t *Tracker) Run(ctx context.Context, interval time.Duration) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			t.Check()
		}
	}
}

// allStacks is the stack of every goroutine, as runtime.Stack writes it.
func allStacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// stacksOf cuts the stacks of the goroutines labelled with operation id
// out of a goroutine profile in its debug=1 form (groups of identical
// stacks, separated by blank lines, each with a "# labels:" line).
func stacksOf(profile []byte, id uint64) []byte {
	want := []byte(`"` + label + `":"` + strconv.FormatUint(id, 10) + `"`)
	var out [][]byte
	if bytes.HasPrefix(profile, []byte("goroutine profile:")) {
		if i := bytes.IndexByte(profile, '\n'); i >= 0 {
			profile = profile[i+1:]
		}
	}
	for _, group := range bytes.Split(profile, []byte("\n\n")) {
		if bytes.Contains(group, want) {
			out = append(out, bytes.TrimSpace(group))
		}
	}
	if len(out) == 0 {
		return []byte("(no goroutine serves it any more)")
	}
	return bytes.Join(out, []byte("\n\n"))
}
