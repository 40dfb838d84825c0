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
	slot     *slot
	Name     string    // the FUSE operation: read, lookup, readdir...
	parts    [3]string // bucket, and the key it is about in up to two pieces (Path)
	UID, PID uint32    // the calling process and its user
	Start    time.Time // when the request arrived
	reported bool      // logged as stuck (under Tracker.mu)
}

// Path is the bucket/key the operation is about, joined only when asked
// (for a report, never per request).
func (o *Op) Path() string {
	b, k := o.parts[0], o.parts[1]+o.parts[2]
	if k == "" {
		return b
	}
	return b + "/" + k
}

// slot holds one operation in flight at a time, and is reused: so Begin
// and End allocate nothing (no Op, and no profiler label, which is made
// once per slot and names the slot, not the operation).
type slot struct {
	op     Op
	n      uint64          // its number: the value of its label
	labels context.Context // pprof.WithLabels of label = n
	inUse  bool
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

// Tracker holds the operations in flight. Begin and End cost a few
// stores under a mutex and allocate nothing once the slots for the most
// operations ever in flight at once are made; the stacks are only read
// when something is stuck. It is safe for concurrent use.
type Tracker struct {
	cfg Config

	mu       sync.Mutex
	slots    []*slot // every slot made, in use or not
	free     []*slot
	inFlight int
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
	return &Tracker{cfg: cfg}
}

// Begin records an operation on the path bucket/key1+key2 (parts, joined
// only if a report needs it) starting now on the calling goroutine; pass
// the result to End, on the same goroutine, when it is answered, and use
// it no more after that. The goroutine carries the operation's slot as a
// profiler label until then, so its stack can be found when it is stuck
// (goroutines it starts inherit the label: their stacks are shown too).
func (t *Tracker) Begin(name string, parts [3]string, uid, pid uint32) *Op {
	start := t.cfg.Now()
	t.mu.Lock()
	var s *slot
	if n := len(t.free); n > 0 {
		s, t.free = t.free[n-1], t.free[:n-1]
	} else {
		s = &slot{n: uint64(len(t.slots)) + 1}
		s.labels = pprof.WithLabels(context.Background(), pprof.Labels(label, strconv.FormatUint(s.n, 10)))
		t.slots = append(t.slots, s)
	}
	t.next++
	s.op = Op{id: t.next, slot: s, Name: name, parts: parts, UID: uid, PID: pid, Start: start}
	s.inUse = true
	t.inFlight++
	t.mu.Unlock()
	pprof.SetGoroutineLabels(s.labels)
	return &s.op
}

// label is the profiler label that names the operation a goroutine serves.
const label = "bucketfs_op"

// End records that op was answered.
func (t *Tracker) End(op *Op) {
	pprof.SetGoroutineLabels(context.Background())
	t.mu.Lock()
	name, start, reported := op.Name, op.Start, op.reported
	var path string
	if reported {
		path = op.Path()
	}
	pid := op.PID
	s := op.slot
	s.op = Op{}
	s.inUse = false
	t.free = append(t.free, s)
	t.inFlight--
	t.mu.Unlock()
	took := t.cfg.Now().Sub(start)
	if reported {
		t.cfg.Logger.Warn("stuck operation finished", "op", name, "path", path, "pid", pid, "took", took.Round(time.Millisecond))
	}
	if t.cfg.Observer != nil {
		t.cfg.Observer.ObserveOp(name, took)
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

// inUse calls f for every operation in flight; t.mu is held.
func (t *Tracker) inUse(f func(op *Op)) {
	for _, s := range t.slots {
		if s.inUse {
			f(&s.op)
		}
	}
}

// Older lists the operations in flight for at least d, oldest first.
func (t *Tracker) Older(d time.Duration) []Info {
	now := t.cfg.Now()
	var ops []Op
	t.mu.Lock()
	t.inUse(func(op *Op) {
		if now.Sub(op.Start) >= d {
			ops = append(ops, *op)
		}
	})
	t.mu.Unlock()
	slices.SortFunc(ops, func(a, b Op) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]Info, len(ops))
	for i, op := range ops {
		out[i] = Info{Op: op.Name, Path: op.Path(), UID: op.UID, PID: op.PID, Seconds: now.Sub(op.Start).Seconds()}
	}
	return out
}

// InFlight is the number of operations in flight.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight
}

// Stuck is the number of operations in flight for longer than they may
// take (StuckAfter, or their Patience).
func (t *Tracker) Stuck() int {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	t.inUse(func(op *Op) {
		if now.Sub(op.Start) >= t.stuckAfter(op.Name) {
			n++
		}
	})
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
	t.inUse(func(op *Op) {
		if !op.reported && now.Sub(op.Start) >= t.stuckAfter(op.Name) {
			op.reported = true
			fresh = append(fresh, *op)
		}
	})
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
		// The label names the slot: its stacks are this operation's
		// only if the operation still holds the slot after the profile.
		stack := []byte(noGoroutine)
		t.mu.Lock()
		held := op.slot.inUse && op.slot.op.id == op.id
		t.mu.Unlock()
		if held {
			stack = stacksOf(labelled.Bytes(), op.slot.n)
		}
		t.cfg.Logger.Warn("operation stuck: no answer yet; the process that made it waits",
			"op", op.Name, "path", op.Path(), "uid", op.UID, "pid", op.PID,
			"waiting", now.Sub(op.Start).Round(time.Second), "stack", string(stack))
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

const noGoroutine = "(no goroutine serves it any more)"

// stacksOf cuts the stacks of the goroutines labelled with slot id
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
		return []byte(noGoroutine)
	}
	return bytes.Join(out, []byte("\n\n"))
}
