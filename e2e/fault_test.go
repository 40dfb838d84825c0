package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/internal/faultproxy"
)

// startProxy puts a fault proxy in front of the suite's server.
func (s *suite) startProxy(t *testing.T, cfg faultproxy.Config) *faultproxy.Proxy {
	t.Helper()
	cfg.Target = s.endpoint
	p, err := faultproxy.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		t.Logf("fault proxy: %v", p.Stats())
		p.Close()
	})
	return p
}

// TestFaultsLargeRead reads a 1 GiB object (BUCKETFS_E2E_BIG_SIZE) through a
// proxy that breaks 10% of the requests in every way it knows (503, 500,
// resets and truncations mid-body, 3 s stalls cut by --stall-timeout 1s):
// the bytes must match the SHA-256 of what was stored.
func TestFaultsLargeRead(t *testing.T) {
	s := need(t)
	size := os.Getenv("BUCKETFS_E2E_BIG_SIZE")
	if size == "" {
		size = "1GiB"
	}
	bkt := s.bucket("faultbig")
	sums := s.seedRandom(t, fmt.Sprintf("%s/big.bin:%s", bkt, size))
	p := s.startProxy(t, faultproxy.Config{Rate: 0.10, Seed: 61, StallFor: 3 * time.Second})
	mp := s.mount(t, "s3://"+bkt, "--endpoint-url", p.URL(), "--stall-timeout", "1s")
	r := s.exec(t, 30*time.Minute, nil, "sha256sum", filepath.Join(mp, "big.bin"))
	if r.err != nil {
		t.Fatalf("sha256sum under faults: %v: %s", r.err, clip(r.stderr))
	}
	if got, _, _ := strings.Cut(r.stdout, " "); got != sums["big.bin"] {
		t.Errorf("sha256 under faults = %s, want %s", got, sums["big.bin"])
	}
	st := p.Stats()
	t.Logf("read %s under faults in %v; proxy: %v", size, r.took.Round(time.Millisecond), st)
	if st.Total() == 0 {
		t.Errorf("no fault was injected")
	}
}

// faultWalkObjects is how many objects TestFaultsWalk lists: 2,000 by
// default to keep CI short, BUCKETFS_E2E_FAULT_OBJECTS=10000 for the full
// walk of the issue.
func faultWalkObjects(t *testing.T) int {
	n := 2000
	if v := os.Getenv("BUCKETFS_E2E_FAULT_OBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("BUCKETFS_E2E_FAULT_OBJECTS=%q: want a number >= 100", v)
		}
	}
	return n
}

// TestFaultsWalk walks a tree (one directory of several listing pages, the
// rest small) through the faulty proxy: find must list every file, and
// files read back their own content.
func TestFaultsWalk(t *testing.T) {
	s := need(t)
	total := faultWalkObjects(t)
	bkt := s.bucket("faultwalk")
	root := t.TempDir()
	files := map[string][]byte{}
	big := total * 6 / 10
	for i := 0; i < total; i++ {
		dir := "d00"
		if i >= big {
			dir = fmt.Sprintf("d%02d", 1+i%8)
		}
		rel := fmt.Sprintf("%s/f%05d.txt", dir, i)
		files[rel] = []byte(rel + "\n")
	}
	writeTree(t, filepath.Join(root, bkt), files)
	s.seedDir(t, root)

	p := s.startProxy(t, faultproxy.Config{Rate: 0.10, Seed: 62, StallFor: 2 * time.Second})
	mp := s.mount(t, "s3://"+bkt, "--endpoint-url", p.URL(), "--stall-timeout", "1s", "--metadata-ttl", "1s")
	// One walk sends only a few dozen listing requests; walk again (the
	// listings expire after 1s) until the faults have hit some of them.
	for pass := 1; ; pass++ {
		before := p.Stats()
		r := s.exec(t, 20*time.Minute, nil, "find", mp, "-type", "f")
		if r.err != nil {
			t.Fatalf("find %d under faults: %v: %s", pass, r.err, clip(r.stderr))
		}
		got := map[string]bool{}
		for _, l := range lines(r.stdout) {
			got[strings.TrimPrefix(l, mp+"/")] = true
		}
		missing := 0
		for rel := range files {
			if !got[rel] {
				missing++
			}
		}
		if len(got) != total || missing > 0 {
			t.Errorf("find %d under faults listed %d files (%d missing), want %d", pass, len(got), missing, total)
		}
		after := p.Stats()
		t.Logf("find %d of %d files under faults took %v: %d requests, %d faults", pass, total, r.took.Round(time.Millisecond),
			after.Requests-before.Requests, after.Total()-before.Total())
		if after.Total() >= 5 || pass == 20 {
			break
		}
		time.Sleep(1100 * time.Millisecond)
	}

	// Read a sample back through the faults.
	i := 0
	for rel, want := range files {
		if i++; i > 100 {
			break
		}
		b, err := os.ReadFile(filepath.Join(mp, rel))
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("read %s under faults = %q, %v", rel, b, err)
		}
	}
	if p.Stats().Total() == 0 {
		t.Errorf("no fault was injected")
	}
}

// TestOutage: with the server gone (connections refused, or accepted and
// never answered), stat, ls and read fail with EIO within the bound of
// --request-timeout, the daemon stays up, and the same mount works again
// once the server is back.
func TestOutage(t *testing.T) {
	s := need(t)
	const timeout = 5 * time.Second
	// One request's bound, plus a little for the kernel and a noisy
	// machine. A read may cost two: when a page read fails the kernel
	// tries that page once more on its own.
	const slack = 4 * time.Second
	big := pseudoRandom(7, 8<<20)
	for _, tc := range []struct {
		name   string
		outage faultproxy.Outage
	}{
		{"refused", faultproxy.Refuse},
		{"blackhole", faultproxy.Blackhole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bkt := s.bucket("outage-" + tc.name)
			s.seedBuckets(t, map[string]map[string][]byte{bkt: {
				"a.txt": []byte("a\n"), "big.bin": big, "sub/x.txt": []byte("x\n"),
			}})
			p := s.startProxy(t, faultproxy.Config{})
			mp := s.mount(t, "s3://"+bkt, "--endpoint-url", p.URL(),
				"--request-timeout", timeout.String(), "--metadata-ttl", "1s", "--cache-size", "1MiB")
			pid := daemonPID(t, mp)

			f, err := os.Open(filepath.Join(mp, "big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 128<<10)
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}

			if err := p.SetOutage(tc.outage); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // let the metadata TTL pass
			ops := []struct {
				name  string
				bound time.Duration
				fn    func() error
			}{
				{"stat of a new name", timeout + slack, func() error { _, err := os.Stat(filepath.Join(mp, "never-seen.txt")); return err }},
				{"ls", timeout + slack, func() error { _, err := os.ReadDir(filepath.Join(mp, "sub")); return err }},
				{"read", 2*timeout + slack, func() error { _, err := f.ReadAt(buf, 6<<20); return err }},
			}
			for _, op := range ops {
				bound := op.bound
				took, err := timed(t, 3*bound, op.fn)
				t.Logf("%s during the outage: %v after %v", op.name, err, took.Round(time.Millisecond))
				if !errors.Is(err, syscall.EIO) {
					t.Errorf("%s during the outage: %v, want EIO", op.name, err)
				}
				if took > bound {
					t.Errorf("%s took %v to fail, want at most %v (--request-timeout %v)", op.name, took, bound, timeout)
				}
			}
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("daemon %d died during the outage: %v", pid, err)
			}
			if !isMounted(t, mp) {
				t.Fatalf("not mounted after the outage")
			}

			if err := p.SetOutage(faultproxy.Up); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err1 := os.Stat(filepath.Join(mp, "a.txt"))
				ents, err2 := os.ReadDir(filepath.Join(mp, "sub"))
				n, err3 := f.ReadAt(buf, 6<<20)
				if err1 == nil && err2 == nil && len(ents) == 1 && err3 == nil && bytes.Equal(buf[:n], big[6<<20:6<<20+n]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the mount did not recover 30s after the server came back: %v, %v, %v", err1, err2, err3)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if b, err := os.ReadFile(filepath.Join(mp, "sub", "x.txt")); err != nil || string(b) != "x\n" {
				t.Errorf("read after recovery = %q, %v", b, err)
			}
		})
	}
}

// timed runs fn in a goroutine and returns how long it took; a call that
// does not return within limit fails the test (a hung FUSE request).
func timed(t *testing.T, limit time.Duration, fn func() error) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		t.Fatalf("operation still hangs after %v", limit)
		return 0, nil
	}
}

// daemonPID finds the bucketfs daemon serving mp: a process whose command
// line is "... mount ... MP".
func daemonPID(t *testing.T, mp string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) > 2 && args[1] == "mount" && args[len(args)-1] == mp && processAlive(pid) {
			return pid
		}
	}
	t.Fatalf("no bucketfs daemon found for %s", mp)
	return 0
}

// processAlive reports whether pid runs (exists and is not a zombie).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may contain spaces and parentheses.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
