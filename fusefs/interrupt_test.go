package fusefs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// The "signals" scenario: listings and HEADs under slow/ take 800 ms;
// under hang/ they never end unless their context does.
func init() {
	scenarios["signals"] = scenario{
		seed: func(ctx context.Context, mem *memstore.Store) error {
			if err := mem.CreateBucket(ctx, "bkt"); err != nil {
				return err
			}
			for _, k := range []string{"slow/a.txt", "hang/x.txt"} {
				if _, err := mem.Put(ctx, "bkt", k, strings.NewReader("x"), 1); err != nil {
					return err
				}
			}
			return nil
		},
		cache: cache.Config{RequestTimeout: time.Minute},
		wrap: func(mem *memstore.Store) store.ObjectStore {
			fs := faultstore.New(mem)
			fs.SetHook(func(ctx context.Context, op, bucket, key string) error {
				if op != faultstore.OpList && op != faultstore.OpStat {
					return nil
				}
				wait := time.Duration(1 << 62)
				switch {
				case strings.HasPrefix(key, "slow"):
					wait = 800 * time.Millisecond
				case !strings.HasPrefix(key, "hang"):
					return nil
				}
				select {
				case <-time.After(wait):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			return fs
		},
	}
}

// statEnv makes this test binary a caller that catches SIGUSR1 and makes
// one stat(2) of the path, as C programs do (no retry on EINTR); it
// prints "ready", then the errno and how long the call took.
const statEnv = "BUCKETFS_FS_TEST_STAT"

type statResult struct {
	Errno int   `json:"errno"`
	MS    int64 `json:"ms"`
}

func statForTest(path string) {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR1)
	fmt.Println("ready")
	start := time.Now()
	var st syscall.Stat_t
	err := syscall.Stat(path, &st)
	r := statResult{MS: time.Since(start).Milliseconds()}
	if e, ok := err.(syscall.Errno); ok {
		r.Errno = int(e)
	}
	json.NewEncoder(os.Stdout).Encode(r)
}

// statter is a running statForTest.
type statter struct {
	cmd  *exec.Cmd
	out  *bufio.Reader
	done chan statResult
}

func startStat(t *testing.T, path string) *statter {
	t.Helper()
	s := &statter{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan statResult, 1)}
	s.cmd.Env = append(os.Environ(), statEnv+"="+path)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	s.out = bufio.NewReader(out)
	if line, _ := s.out.ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("stat caller: %q", line)
	}
	go func() {
		var r statResult
		line, err := s.out.ReadString('\n')
		if err != nil || json.Unmarshal([]byte(line), &r) != nil {
			r.Errno = -1 // died before it answered
		}
		s.done <- r
	}()
	time.Sleep(100 * time.Millisecond) // in its stat(2)
	return s
}

// signal sends sig to every thread of the caller: a signal to a process
// goes to any one of its threads, maybe not the one waiting.
func (s *statter) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	pid := s.cmd.Process.Pid
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, e := range tasks {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			syscall.Tgkill(pid, tid, sig)
		}
	}
}

func (s *statter) result(t *testing.T, limit time.Duration) statResult {
	t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(limit):
		t.Fatalf("stat caller still waiting after %v", limit)
		return statResult{}
	}
}

// TestInterrupts: a signal the caller catches does not fail a request
// that then completes (however many arrive); it ends one that still waits
// interruptGrace later with EINTR; a caller killed, at once or after a
// caught signal, is let go at once.
func TestInterrupts(t *testing.T) {
	c := mountScenario(t, "signals")
	bkt := filepath.Join(c.mp, "bkt")

	t.Run("caught signals while a lookup completes", func(t *testing.T) {
		s := startStat(t, filepath.Join(bkt, "slow", "a.txt"))
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					s.signal(t, syscall.SIGUSR1)
				}
			}
		}()
		r := s.result(t, 10*time.Second)
		close(stop)
		if r.Errno != 0 {
			t.Fatalf("stat under a signal every 20 ms: %v after %d ms, want success", syscall.Errno(r.Errno), r.MS)
		}
	})

	t.Run("a caught signal ends a wait that does not end", func(t *testing.T) {
		s := startStat(t, filepath.Join(bkt, "hang", "x.txt"))
		sent := time.Now()
		s.signal(t, syscall.SIGUSR1)
		r := s.result(t, 10*time.Second)
		took := time.Since(sent)
		if r.Errno != int(syscall.EINTR) || took < interruptGrace-200*time.Millisecond || took > interruptGrace+2*time.Second {
			t.Fatalf("stat of a name whose lookup never ends, one caught signal: %v %v after the signal, want EINTR after about %v",
				syscall.Errno(r.Errno), took, interruptGrace)
		}
	})

	for _, caughtFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("killed, a caught signal first %v", caughtFirst), func(t *testing.T) {
			s := startStat(t, filepath.Join(bkt, "hang", "x.txt"))
			if caughtFirst {
				// The kernel sends one interrupt per request: the
				// kill that follows is seen by looking.
				s.signal(t, syscall.SIGUSR1)
				time.Sleep(300 * time.Millisecond)
			}
			sent := time.Now()
			s.cmd.Process.Kill()
			if err := waitExit(s.cmd, 5*time.Second); err != nil {
				t.Fatalf("killed caller: %v", err)
			}
			if took := time.Since(sent); took > time.Second {
				t.Errorf("a killed caller was let go after %v, want under a second", took)
			}
		})
	}
}

func TestKillPending(t *testing.T) {
	status := func(sig, shd string) []byte {
		return []byte("Name:\tR\nState:\tS (sleeping)\nSigQ:\t0/31421\nSigPnd:\t" + sig + "\nShdPnd:\t" + shd + "\nSigBlk:\t0000000000000000\n")
	}
	for _, tc := range []struct {
		name   string
		status []byte
		want   bool
	}{
		{"nothing pending", status("0000000000000000", "0000000000000000"), false},
		{"a caught SIGUSR1 pending", status("0000000000000200", "0000000000000000"), false},
		{"SIGKILL on the thread", status("0000000000000100", "0000000000000000"), true},
		{"SIGKILL on the process", status("0000000000000000", "0000000000000100"), true},
		{"SIGKILL among others", status("0000000000004102", "0000000000000000"), true},
		{"unreadable mask", status("zz", "0000000000000000"), true},
		{"no masks", []byte("Name:\tR\n"), true},
		{"empty", nil, true},
	} {
		if got := killPending(tc.status); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDying: a live process is not dying; one gone, or pid 0, is.
func TestDying(t *testing.T) {
	if dying(uint32(os.Getpid())) {
		t.Error("this test process counts as dying")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !dying(uint32(cmd.Process.Pid)) {
		t.Error("a process that ended counts as alive")
	}
	if !dying(0) {
		t.Error("pid 0 (a caller not seen) counts as alive")
	}
}

// TestWorkCtx: a request's context carries go-fuse's values; an
// interrupt ends it at once for a caller that cannot be seen (pid 0),
// interruptGrace later for one alive; the request's end ends it, even
// if first asked for afterwards; contexts derived from it end with it.
func TestWorkCtx(t *testing.T) {
	closedWithin := func(ctx context.Context, d time.Duration) bool {
		select {
		case <-ctx.Done():
			return ctx.Err() != nil
		case <-time.After(d):
			return false
		}
	}
	type key struct{}
	for _, tc := range []struct {
		name      string
		pid       uint32
		interrupt bool
		within    time.Duration // ended within, after the interrupt; 0: not ended by it
	}{
		{"not interrupted", uint32(os.Getpid()), false, 0},
		{"interrupted, caller alive", uint32(os.Getpid()), true, interruptGrace + time.Second},
		{"interrupted, caller not seen", 0, true, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cancelc := make(chan struct{})
			parent := &fuse.Context{Caller: fuse.Caller{Pid: tc.pid}, Cancel: cancelc}
			ctx, release := work(context.WithValue(parent, key{}, "v"), tc.pid)
			if ctx.Value(key{}) != "v" {
				t.Fatal("value lost")
			}
			if c, ok := fuse.FromContext(ctx); !ok || c.Pid != tc.pid {
				t.Fatal("caller lost")
			}
			derived, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			if ctx.Err() != nil {
				t.Fatal("ended at start")
			}
			start := time.Now()
			if tc.interrupt {
				close(cancelc)
			}
			if tc.within == 0 {
				if closedWithin(derived, 100*time.Millisecond) {
					t.Fatal("ended without an interrupt")
				}
			} else {
				if tc.pid != 0 && closedWithin(derived, interruptGrace/2) {
					t.Fatalf("a live caller's request ended %v after an interrupt, want %v", time.Since(start), interruptGrace)
				}
				if !closedWithin(derived, tc.within) {
					t.Fatalf("not ended %v after an interrupt", time.Since(start))
				}
			}
			release()
			if !closedWithin(ctx, time.Second) || !closedWithin(derived, time.Second) {
				t.Fatal("not ended by the request's end")
			}
		})
	}
	t.Run("first asked for after the request ended", func(t *testing.T) {
		ctx, release := work(&fuse.Context{Cancel: make(chan struct{})}, 1)
		release()
		if !closedWithin(ctx, time.Second) {
			t.Fatal("not ended")
		}
	})
}
