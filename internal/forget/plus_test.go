package forget

import (
	"sync"
	"testing"
	"time"
)

// Directory reads give files' attributes while the kernel holds fewer file
// inodes than the bound, and past it only while files are being looked up
// by name (ls -l of names passed without attributes).
func TestPlusFile(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	p := NewPlus(3, clock)
	steps := []struct {
		name string
		do   func()
		hold int64
		want bool
	}{
		{"below the bound", func() {}, 2, true},
		{"at the bound, no one stats", func() {}, 1, false},
		{"a file looked up by name", p.LookedUp, 0, true},
		{"still within the window", func() { advance(StatWindow / 2) }, 2, true},
		{"the window passed", func() { advance(StatWindow) }, 0, false},
		{"the kernel forgot inodes", func() {}, -4, true},
	}
	for _, s := range steps {
		s.do()
		p.Hold(s.hold)
		if got := p.File(); got != s.want {
			inodes, _ := p.Stats()
			t.Errorf("%s (%d inodes): File = %v, want %v", s.name, inodes, got, s.want)
		}
	}
}
