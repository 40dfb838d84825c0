package cache

import (
	"sync"
	"sync/atomic"
)

// streams knows the sequential runs of the Readers of each object, so that
// the read-ahead of one stops where another reader's run begins. The run
// of a Reader that closed is remembered while others of the object are
// open (the four readers of quarters of a file do not end together), up to
// maxRuns an object.
type streams struct {
	mu sync.Mutex
	m  map[object]*objectRuns
}

const maxRuns = 16

type objectRuns struct {
	open int
	runs []*run
}

// run is what other Readers see of one Reader's current run.
type run struct {
	start  atomic.Int64 // where it began
	next   atomic.Int64 // where it has read up to
	seq    atomic.Bool  // whether it reads ahead
	closed bool         // under streams.mu
}

func (s *streams) add(r *Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[object]*objectRuns)
	}
	o := s.m[r.obj]
	if o == nil {
		o = &objectRuns{}
		s.m[r.obj] = o
	}
	if len(o.runs) >= maxRuns {
		for i, x := range o.runs {
			if x.closed {
				o.runs = append(o.runs[:i], o.runs[i+1:]...)
				break
			}
		}
	}
	o.open++
	o.runs = append(o.runs, r.seen)
}

func (s *streams) remove(r *Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.m[r.obj]
	r.seen.closed = true
	if o.open--; o.open == 0 {
		delete(s.m, r.obj)
	}
}

// alone reports whether r is the only open Reader of its object.
func (s *streams) alone(r *Reader) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.m[r.obj]
	return o != nil && o.open == 1
}

// limit returns target, or less: the start of the first sequential run of
// another reader of r's object that begins in [from, target), or from
// itself (no read-ahead) while from lies in what such a run has read. Only
// runs that began after r's own count: two readers going through a file
// from its start read ahead each as usual. The kernel's own read-ahead
// carries a reader some way past the end of its range: that alone is not
// worth fetching the next reader's blocks again.
func (s *streams) limit(r *Reader, from, target int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.m[r.obj]
	if o == nil {
		return target
	}
	for _, x := range o.runs {
		if x == r.seen || !x.seq.Load() {
			continue
		}
		st := x.start.Load()
		if st <= r.runStart {
			continue
		}
		if st >= from && st < target {
			target = st
		} else if st < from && from < x.next.Load() {
			target = from
		}
	}
	return target
}
