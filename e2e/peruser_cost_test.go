package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What per-user identity costs a walk: `find` and `ls -lR` as one user, on
// a per-user mount (the user's role assumed at a local STS) and on a mount
// with one identity (the same user's keys), fresh mounts for each command,
// then three warm walks (best of three). The environment sizes it:
//
//	BUCKETFS_E2E_WALK_DIRS, BUCKETFS_E2E_WALK_FILES  directories and files in each (40, 50)
//	BUCKETFS_E2E_WALK_DELAY=20ms   bench/delayline between the mounts and the server
//	BUCKETFS_E2E_WALK_TRACE=1      one more warm walk of each, under perf, counting
//	                               the kernel's FUSE requests by opcode (its
//	                               fuse:fuse_request_send/end trace points) and
//	                               their round trips; and strace -c of ls -lR
//
// Each walk logs its time and the daemon's CPU time (schedstat).
func TestPerUserWalkCost(t *testing.T) {
	s := need(t)
	us := needUsers(t, "bfs-alice")
	alice := us[0]
	g := startIAMGateway(t)
	const (
		hostKey, hostSecret   = "BFSHOSTKEY", "bfsHostSecret0123"
		aliceKey, aliceSecret = "BFSALICEKEY", "bfsAliceSecret0123"
		aliceRole             = "arn:aws:iam::111122223333:role/alice-data"
	)
	g.adminCmd(t, "create-user", "--access", hostKey, "--secret", hostSecret, "--role", "user")
	g.adminCmd(t, "create-user", "--access", aliceKey, "--secret", aliceSecret, "--role", "user")
	bkt := s.bucket("pu-walk")
	g.adminCmd(t, "create-bucket", "--owner", aliceKey, "--bucket", bkt)
	dirs, files := envInt(t, "BUCKETFS_E2E_WALK_DIRS", 40), envInt(t, "BUCKETFS_E2E_WALK_FILES", 50)
	seedWalk(t, g, newS3Client(g.endpoint, aliceKey, aliceSecret, s.region), bkt, dirs, files)
	sts := &fakeSTS{hostKey: hostKey, roles: map[string][2]string{aliceRole: {aliceKey, aliceSecret}}}
	stsSrv := httptest.NewServer(sts)
	t.Cleanup(stsSrv.Close)
	conf := filepath.Join(t.TempDir(), "identities.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("user %s role %s\n", alice.name, aliceRole)), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := sharedDir(t, s, "puwalk")
	endpoint := g.endpoint
	if d := os.Getenv("BUCKETFS_E2E_WALK_DELAY"); d != "" {
		// S3's round trip, for numbers that mean something beyond a
		// loopback server: bench/delayline in front of the gateway.
		endpoint = delayline(t, strings.TrimPrefix(g.endpoint, "http://"), d)
	}
	mount := func(name string, env []string, flags ...string) string {
		mp := filepath.Join(dir, name)
		if err := os.Mkdir(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(dir, name+".log")
		t.Cleanup(func() { s.cleanupMount(t, mp) })
		args := append([]string{"mount", "--endpoint-url", endpoint, "--path-style", "--region", s.region, "--log-file", logFile,
			"--allow-other", "--read-only", "--metadata-ttl", "5m"}, flags...)
		if r := s.exec(t, time.Minute, env, s.bin, append(args, mp)...); r.err != nil {
			t.Fatalf("mount %s: %v\n%s", name, r.err, clip(r.stderr))
		}
		return mp
	}
	type walked struct{ took, cpu time.Duration }
	walk := func(mp string, cmd ...string) walked {
		pid := daemonPID(t, mp)
		cpu0 := schedTime(t, pid)
		r := s.runAs(t, alice.name, "", append(cmd, filepath.Join(mp, bkt))...)
		if r.err != nil {
			t.Fatalf("%s as alice: %v %s", strings.Join(cmd, " "), r.err, clip(r.stderr))
		}
		if n := strings.Count(r.stdout, ".csv"); n < dirs*files {
			t.Fatalf("%s as alice saw %d files, want %d", strings.Join(cmd, " "), n, dirs*files)
		}
		return walked{r.took, schedTime(t, pid) - cpu0}
	}
	trace := os.Getenv("BUCKETFS_E2E_WALK_TRACE") != ""
	profile := os.Getenv("BUCKETFS_E2E_WALK_PROFILE") // a file for the per-user daemon's CPU profile of warm ls -lR
	for i, cmd := range [][]string{{"find"}, {"ls", "-lR"}} {
		name := strings.Join(cmd, " ")
		single := mount(fmt.Sprintf("single%d", i), []string{"AWS_ACCESS_KEY_ID=" + aliceKey, "AWS_SECRET_ACCESS_KEY=" + aliceSecret})
		puFlags := []string{"--identity", "per-user", "--identities", conf}
		metricsAddr := fmt.Sprintf("127.0.0.1:%d", rotFreePort(t))
		if profile != "" {
			puFlags = append(puFlags, "--metrics-addr", metricsAddr)
		}
		peruser := mount(fmt.Sprintf("peruser%d", i), []string{"AWS_ACCESS_KEY_ID=" + hostKey, "AWS_SECRET_ACCESS_KEY=" + hostSecret, "AWS_ENDPOINT_URL_STS=" + stsSrv.URL},
			puFlags...)
		// Cold: fresh mounts; the first walk lists every directory.
		alog := accessLog{g.accessLog}
		m0 := alog.mark(t)
		coldS := walk(single, cmd...)
		reqS := alog.count(t, m0, bkt)
		m0 = alog.mark(t)
		coldP := walk(peruser, cmd...)
		reqP := alog.count(t, m0, bkt)
		t.Logf("%-6s cold S3 requests: single %v, per-user %v", name, reqS, reqP)
		// Warm: best of three, listings cached.
		warmS, warmP := walked{took: time.Hour}, walked{took: time.Hour}
		for range 3 {
			if w := walk(single, cmd...); w.took < warmS.took {
				warmS = w
			}
			if w := walk(peruser, cmd...); w.took < warmP.took {
				warmP = w
			}
		}
		n := dirs * files
		t.Logf("%-6s of %d files: cold %v single, %v per-user (%.2fx); warm %v single, %v per-user (%.2fx)", name, n,
			coldS.took.Round(time.Millisecond), coldP.took.Round(time.Millisecond), float64(coldP.took)/float64(coldS.took),
			warmS.took.Round(time.Millisecond), warmP.took.Round(time.Millisecond), float64(warmP.took)/float64(warmS.took))
		t.Logf("%-6s daemon CPU: cold %v single, %v per-user; warm %v single, %v per-user", name,
			coldS.cpu.Round(time.Millisecond), coldP.cpu.Round(time.Millisecond), warmS.cpu.Round(time.Millisecond), warmP.cpu.Round(time.Millisecond))
		if trace {
			for _, m := range []struct{ name, mp string }{{"single", single}, {"per-user", peruser}} {
				ops := traceFUSE(t, s, m.mp, alice.name, append(cmd, filepath.Join(m.mp, bkt))...)
				t.Logf("%-6s warm, %s: %s", name, m.name, ops.summary(n))
			}
			if cmd[0] == "ls" {
				straceLs(t, s, alice.name, filepath.Join(peruser, bkt))
			}
		}
		if profile != "" && cmd[0] == "ls" {
			profileWalks(t, "http://"+metricsAddr, profile, func() { walk(peruser, cmd...) })
		}
		if cmd[0] == "find" {
			// find reads directories only: within 2x warm (with a
			// margin for a loaded machine).
			if float64(warmP.took) > 3*float64(warmS.took) && warmP.took-warmS.took > 200*time.Millisecond {
				t.Errorf("warm %s on a per-user mount took %v, %.1fx the single-identity mount's %v", name, warmP.took, float64(warmP.took)/float64(warmS.took), warmS.took)
			}
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// seedWalk makes dirs directories of files objects in bkt: through S3
// when few, else written straight into the gateway's directory (served
// with an empty ETag, which a walk does not mind).
func seedWalk(t *testing.T, g *iamGateway, cl *s3client, bkt string, dirs, files int) {
	t.Helper()
	start := time.Now()
	if dirs*files > 5000 {
		for d := 0; d < dirs; d++ {
			p := filepath.Join(g.data, bkt, fmt.Sprintf("d%02d", d))
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			for f := 0; f < files; f++ {
				if err := os.WriteFile(filepath.Join(p, fmt.Sprintf("f%03d.csv", f)), []byte("x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Logf("wrote %d objects into the gateway's directory in %v", dirs*files, time.Since(start).Round(time.Millisecond))
		return
	}
	var wg sync.WaitGroup
	errs := make(chan error, dirs)
	for d := 0; d < dirs; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := 0; f < files; f++ {
				if err := cl.put(context.Background(), bkt, fmt.Sprintf("d%02d/f%03d.csv", d, f), []byte("x\n")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("put %d objects in %v", dirs*files, time.Since(start).Round(time.Millisecond))
}

// schedTime is the CPU time pid's threads have used (their
// /proc/PID/task/TID/schedstat, in ns).
func schedTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads of %d: %v", pid, err)
	}
	var sum time.Duration
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that ended
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// fuseOps counts the kernel's FUSE requests to one connection by opcode,
// with the sum of their round trips (send to end, as the kernel sees it).
type fuseOps struct {
	n   map[string]int
	rtt map[string]time.Duration
}

func (o fuseOps) summary(entries int) string {
	names := make([]string, 0, len(o.n))
	total := 0
	for k, v := range o.n {
		names = append(names, k)
		total += v
	}
	sort.Slice(names, func(i, j int) bool { return o.n[names[i]] > o.n[names[j]] })
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests (%.2f per file):", total, float64(total)/float64(entries))
	for _, k := range names {
		fmt.Fprintf(&b, " %s %d (%.2f/file, %v each)", strings.TrimPrefix(k, "FUSE_"), o.n[k], float64(o.n[k])/float64(entries),
			(o.rtt[k] / time.Duration(o.n[k])).Round(time.Microsecond))
	}
	return b.String()
}

// traceFUSE runs cmd as user under perf, recording the fuse trace points,
// and counts the requests to the mount at mp.
func traceFUSE(t *testing.T, s *suite, mp, user string, cmd ...string) fuseOps {
	t.Helper()
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Skip("BUCKETFS_E2E_WALK_TRACE needs perf")
	}
	var st unix.Stat_t
	if err := unix.Stat(mp, &st); err != nil {
		t.Fatal(err)
	}
	conn := fmt.Sprintf("connection %d ", unix.Major(st.Dev)<<20|unix.Minor(st.Dev))
	data := filepath.Join(t.TempDir(), "perf.data")
	args := append([]string{"record", "-q", "-a", "-e", "fuse:fuse_request_send", "-e", "fuse:fuse_request_end", "-o", data, "--", "runuser", "-u", user, "--"}, cmd...)
	if r := s.exec(t, 2*time.Minute, nil, perf, args...); r.err != nil {
		t.Fatalf("perf record: %v\n%s", r.err, clip(r.stderr))
	}
	out, err := exec.Command(perf, "script", "-i", data, "--ns", "-F", "time,event,trace").Output()
	if err != nil {
		t.Fatalf("perf script: %v", err)
	}
	ops := fuseOps{n: map[string]int{}, rtt: map[string]time.Duration{}}
	type sent struct {
		op string
		at time.Duration
	}
	inflight := map[string]sent{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, conn) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		sec, err := strconv.ParseFloat(strings.TrimSuffix(f[0], ":"), 64)
		if err != nil {
			continue
		}
		at := time.Duration(sec * 1e9)
		req := fieldAfter(f, "req")
		switch {
		case strings.HasPrefix(f[1], "fuse:fuse_request_send"):
			if i := indexOf(f, "opcode"); i >= 0 && i+2 < len(f) {
				inflight[req] = sent{strings.Trim(f[i+2], "()"), at}
			}
		case strings.HasPrefix(f[1], "fuse:fuse_request_end"):
			if sn, ok := inflight[req]; ok {
				ops.n[sn.op]++
				ops.rtt[sn.op] += at - sn.at
				delete(inflight, req)
			}
		}
	}
	for _, sn := range inflight { // FORGET has no answer
		ops.n[sn.op]++
	}
	return ops
}

func indexOf(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return -1
}

func fieldAfter(f []string, s string) string {
	if i := indexOf(f, s); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// straceLs logs the system calls ls -lR makes as user (strace -c).
func straceLs(t *testing.T, s *suite, user, path string) {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Log("no strace")
		return
	}
	r := s.runAs(t, user, "", "strace", "-c", "ls", "-lR", path)
	if r.err != nil {
		t.Fatalf("strace ls -lR: %v\n%s", r.err, clip(r.stderr))
	}
	t.Logf("strace -c ls -lR, per-user mount:\n%s", r.stderr)
}

// profileWalks takes a 5-second CPU profile of the daemon at metrics into
// file while walking over and over, then its allocation profile.
func profileWalks(t *testing.T, metrics, file string, walk func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(metrics + "/debug/pprof/profile?seconds=5")
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
		done <- err
	}()
	for {
		walk()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("profile: %v", err)
			}
			resp, err := http.Get(metrics + "/debug/pprof/allocs")
			if err != nil {
				t.Fatalf("allocation profile: %v", err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				err = os.WriteFile(file+".allocs", b, 0o644)
			}
			if err != nil {
				t.Fatalf("allocation profile: %v", err)
			}
			t.Logf("CPU profile of the per-user daemon in %s, allocations in %s.allocs", file, file)
			return
		default:
		}
	}
}
