package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// iamGateway is a versitygw of this test's own, with an internal IAM store
// (so user accounts can be created and deleted while it runs) and no IAM
// cache (so a deleted account is refused at once).
type iamGateway struct {
	bin, endpoint, admin string
	root, rootSecret     string
	accessLog            string
	data                 string // the POSIX backend's directory
}

func rotFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func versitygwBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("versitygw is not installed (scripts/test installs it)")
	return ""
}

func startIAMGateway(t *testing.T) *iamGateway {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"data", "iam"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g := &iamGateway{
		bin:  versitygwBin(t),
		root: "AKROTATIONROOT", rootSecret: "SKrotationRootSecret0123456789",
		accessLog: filepath.Join(dir, "access.log"),
		data:      filepath.Join(dir, "data"),
	}
	port, adminPort := rotFreePort(t), rotFreePort(t)
	g.endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	logF, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(g.bin, "--access", g.root, "--secret", g.rootSecret,
		"--port", fmt.Sprintf("127.0.0.1:%d", port), "--admin-port", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--region", "us-east-1", "--quiet", "--access-log", g.accessLog,
		"--iam-dir", filepath.Join(dir, "iam"), "--iam-cache-disable",
		"posix", filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = logF, logF
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logF.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(g.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return g
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logF.Name())
			t.Fatalf("versitygw did not start: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// adminCmd runs "versitygw admin ARGS" against the gateway.
func (g *iamGateway) adminCmd(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{"admin", "--access", g.root, "--secret", g.rootSecret, "--endpoint-url", g.admin}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, g.bin, full...).CombinedOutput(); err != nil {
		t.Fatalf("versitygw admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// requesters counts the access log's requests per requester (access key).
func (g *iamGateway) requesters(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile(g.accessLog)
	if err != nil {
		t.Fatalf("access log: %v", err)
	}
	n := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		// OWNER BUCKET [TIME ZONE] IP REQUESTER ...
		if f := strings.Fields(line); len(f) > 5 {
			if _, _, ok := parseAccessLine(line); ok {
				n[f[5]]++
			}
		}
	}
	return n
}

// roleIMDS is an IMDSv2 fake serving one role's credentials, which the test
// rotates, and which can be taken down (500 on everything). Token is empty:
// versitygw refuses session tokens it did not issue.
type roleIMDS struct {
	mu      sync.Mutex
	akid    string
	secret  string
	expires time.Time
	down    bool
	served  map[string]int
	failed  int
}

const rotationRole = "bucketfs-e2e-role"

func (f *roleIMDS) set(akid, secret string, expires time.Time, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.akid, f.secret, f.expires, f.down = akid, secret, expires, down
}

func (f *roleIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.failed++
		http.Error(w, "metadata service unavailable", http.StatusInternalServerError)
		return
	}
	const creds = "/latest/meta-data/iam/security-credentials/"
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		ttl := r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
		if ttl == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		fmt.Fprint(w, "e2e-imds-token")
	case r.Method != http.MethodGet:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	case r.Header.Get("X-Aws-Ec2-Metadata-Token") != "e2e-imds-token":
		http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
	case r.URL.Path == creds:
		fmt.Fprint(w, rotationRole)
	case r.URL.Path == creds+rotationRole:
		if f.served == nil {
			f.served = map[string]int{}
		}
		f.served[f.akid]++
		json.NewEncoder(w).Encode(map[string]string{
			"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": time.Now().UTC().Format(time.RFC3339),
			"AccessKeyId": f.akid, "SecretAccessKey": f.secret, "Token": "",
			"Expiration": f.expires.UTC().Format(time.RFC3339),
		})
	default:
		http.NotFound(w, r)
	}
}

func (f *roleIMDS) stats() (served map[string]int, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	served = map[string]int{}
	for k, v := range f.served {
		served[k] = v
	}
	return served, f.failed
}

// rotWorkload reads through the mount until stopped and records every failure.
type rotWorkload struct {
	mu       sync.Mutex
	reads    []time.Time // successful reads and walks
	failures []string
}

func (w *rotWorkload) ok() {
	w.mu.Lock()
	w.reads = append(w.reads, time.Now())
	w.mu.Unlock()
}

func (w *rotWorkload) fail(format string, a ...any) {
	w.mu.Lock()
	w.failures = append(w.failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, a...))
	w.mu.Unlock()
}

// between counts successful operations in [from, to).
func (w *rotWorkload) between(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, t := range w.reads {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// TestCredentialRotation mounts with instance-role credentials from a fake
// metadata service that expire two minutes after they are issued, and keeps
// a long read (one open file, ranged reads all over it with the page cache
// dropped after each) and a directory walk running while
//
//  1. the role's keys rotate: a new versitygw user B appears and the fake
//     hands it out; the old user A is deleted at +75s, 45s before A's
//     announced expiry, which only works if the mount refreshed early;
//  2. the metadata service answers 500 from +80s, across the mount's next
//     refresh (due around +100s): B is still valid, so reads go on;
//  3. it comes back at +110s with user C; B is deleted at +135s, before its
//     expiry at +140s, which only works if the mount recovered.
//
// No read may fail.
func TestCredentialRotation(t *testing.T) {
	s := need(t)
	g := startIAMGateway(t)
	ctx := t.Context()
	root := newS3Client(g.endpoint, g.root, g.rootSecret, "us-east-1")
	const bucket = "rotation"
	if _, err := root.do(ctx, http.MethodPut, bucket, "", nil); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	const bigSize = 24 << 20
	big := pseudoRandom(42, bigSize)
	if err := root.put(ctx, bucket, "big.bin", big); err != nil {
		t.Fatal(err)
	}
	tree := map[string][]byte{}
	for d := range 4 {
		for f := range 5 {
			key := fmt.Sprintf("tree/d%d/f%d.txt", d, f)
			tree[key] = []byte(key + "\n")
			if err := root.put(ctx, bucket, key, tree[key]); err != nil {
				t.Fatal(err)
			}
		}
	}

	type user struct{ akid, secret string }
	users := map[string]user{
		"A": {"AKROTATIONUSERA", "SKrotationUserA0123456789"},
		"B": {"AKROTATIONUSERB", "SKrotationUserB0123456789"},
		"C": {"AKROTATIONUSERC", "SKrotationUserC0123456789"},
	}
	create := func(name string) {
		g.adminCmd(t, "create-user", "--access", users[name].akid, "--secret", users[name].secret, "--role", "admin")
		t.Logf("+%s created user %s", rotSince(), name)
	}
	remove := func(name string) {
		g.adminCmd(t, "delete-user", "--access", users[name].akid)
		t.Logf("+%s deleted user %s", rotSince(), name)
	}
	imds := &roleIMDS{}
	imdsSrv := httptest.NewServer(imds)
	t.Cleanup(imdsSrv.Close)

	rotT0 = time.Now().Truncate(time.Second)
	create("A")
	imds.set(users["A"].akid, users["A"].secret, rotT0.Add(120*time.Second), false)

	// The mount gets nothing but the fake metadata service: no keys, no
	// files, metadata enabled.
	dir := t.TempDir()
	env := metadataOnlyEnv(t, s, imdsSrv.URL)
	mp := s.mountDir(t)
	logFile := filepath.Join(dir, "bucketfs.log")
	t.Cleanup(func() {
		s.cleanupMount(t, mp)
		if data, err := os.ReadFile(logFile); err == nil {
			var keep []string
			for _, l := range strings.Split(string(data), "\n") {
				if strings.Contains(l, "credentials") || strings.Contains(l, "level=ERROR") {
					keep = append(keep, l)
				}
			}
			t.Logf("credential lines of the bucketfs log:\n%s", strings.Join(keep, "\n"))
		}
	})
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	mount := exec.CommandContext(mctx, s.bin, "mount", "--endpoint-url", g.endpoint, "--path-style", "--region", "us-east-1",
		"--log-file", logFile, "--cache-size", "2MiB", "--metadata-ttl", "1s", "s3://"+bucket, mp)
	mount.Env = env
	var mountErr bytes.Buffer
	mount.Stderr = &mountErr
	err := mount.Run()
	cancel()
	if err != nil {
		t.Fatalf("mount: %v: %s", err, mountErr.String())
	}
	t.Logf("+%s mounted with instance-role credentials of user A (expiring at +120s)", rotSince())

	// The workload.
	w := &rotWorkload{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // one long read
		defer wg.Done()
		f, err := os.Open(filepath.Join(mp, "big.bin"))
		if err != nil {
			w.fail("open big.bin: %v", err)
			return
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Hop 7 MiB at a time around the 24 MiB object, so the 2 MiB
			// block cache misses and each read is a GET.
			off := int64(i*7%24)<<20 + int64(i%16)*4096
			n, err := f.ReadAt(buf, off)
			switch {
			case err != nil:
				w.fail("read big.bin at %d: %v", off, err)
			case !bytes.Equal(buf[:n], big[off:off+int64(n)]):
				w.fail("read big.bin at %d: wrong bytes", off)
			default:
				w.ok()
			}
			// Drop the kernel's copy so the next pass reads again.
			_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() { // directory walks, listings expire every second
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			files := 0
			err := filepath.WalkDir(filepath.Join(mp, "tree"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(mp, p)
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if !bytes.Equal(data, tree[filepath.ToSlash(rel)]) {
					return fmt.Errorf("%s: wrong content", rel)
				}
				files++
				return nil
			})
			switch {
			case err != nil:
				w.fail("walk: %v", err)
			case files != len(tree):
				w.fail("walk saw %d files, want %d", files, len(tree))
			default:
				w.ok()
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	until := func(d time.Duration) { time.Sleep(time.Until(rotT0.Add(d))) }
	until(20 * time.Second)
	create("B")
	imds.set(users["B"].akid, users["B"].secret, rotT0.Add(140*time.Second), false)
	t.Logf("+%s metadata now serves user B (expiring at +140s)", rotSince())
	until(75 * time.Second)
	remove("A")
	until(80 * time.Second)
	imds.set(users["B"].akid, users["B"].secret, rotT0.Add(140*time.Second), true)
	t.Logf("+%s metadata service down (500)", rotSince())
	until(110 * time.Second)
	create("C")
	imds.set(users["C"].akid, users["C"].secret, rotT0.Add(235*time.Second), false)
	t.Logf("+%s metadata service back, serving user C", rotSince())
	until(135 * time.Second)
	remove("B")
	until(145 * time.Second)
	close(stop)
	wg.Wait()

	served, failed := imds.stats()
	byUser := g.requesters(t)
	t.Logf("metadata served %v and failed %d requests; S3 requests by key: %v", served, failed, byUser)
	for _, f := range w.failures {
		t.Errorf("%s", f)
	}
	for _, ph := range []struct {
		name     string
		from, to time.Duration
	}{
		{"with A", 5 * time.Second, 20 * time.Second},
		{"after A was deleted", 76 * time.Second, 80 * time.Second},
		{"during the outage", 80 * time.Second, 110 * time.Second},
		{"after B was deleted", 136 * time.Second, 145 * time.Second},
	} {
		if n := w.between(rotT0.Add(ph.from), rotT0.Add(ph.to)); n < 10 {
			t.Errorf("only %d reads and walks succeeded %s (+%s to +%s): the workload did not run", n, ph.name, ph.from, ph.to)
		}
	}
	if failed == 0 {
		t.Error("the mount asked nothing during the outage: the outage was not tested")
	}
	for _, name := range []string{"A", "B", "C"} {
		if byUser[users[name].akid] == 0 {
			t.Errorf("no S3 request signed by user %s", name)
		}
	}
	logData, _ := os.ReadFile(logFile)
	for _, want := range []string{"AWS credentials rotated", "refreshing AWS credentials failed"} {
		if !strings.Contains(string(logData), want) {
			t.Errorf("the bucketfs log lacks %q", want)
		}
	}
	for _, u := range users {
		if strings.Contains(string(logData), u.secret) {
			t.Error("the bucketfs log contains a secret key")
		}
	}
}

// rotT0 is when the rotation test's first credentials were issued.
var rotT0 time.Time

func rotSince() time.Duration { return time.Since(rotT0).Round(100 * time.Millisecond) }
