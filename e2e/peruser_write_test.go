package e2e

import (
	"bufio"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Writes on one shared per-user mount: each object written through it is
// written with its writer's access key (versitygw's access log says who
// sent each request, as CloudTrail would), multipart parts sent in the
// background included; a write S3 refuses fails with EACCES and leaves
// nothing; files being staged are in a 0700 directory of their writer's.
func TestPerUserWrites(t *testing.T) {
	s := need(t)
	us := needUsers(t, "bfs-alice", "bfs-bob", "bfs-carol")
	alice, bob, carol := us[0], us[1], us[2]
	g := startIAMGateway(t)
	createPerUserAccounts(t, g)
	// A is alice's, C alice's and bob may write it too, D alice's and bob
	// may only read it.
	bA, bC, bD := s.bucket("pw-a"), s.bucket("pw-c"), s.bucket("pw-d")
	g.adminCmd(t, "create-bucket", "--owner", aliceKey, "--bucket", bA)
	g.adminCmd(t, "create-bucket", "--owner", aliceKey, "--bucket", bC, "--object-ownership", "BucketOwnerPreferred", "--grant-read", bobKey, "--grant-write", bobKey)
	g.adminCmd(t, "create-bucket", "--owner", aliceKey, "--bucket", bD, "--object-ownership", "BucketOwnerPreferred", "--grant-read", bobKey)
	sts := &fakeSTS{hostKey: hostKey, roles: map[string][2]string{aliceRole: {aliceKey, aliceSecret}, bobRole: {bobKey, bobSecret}}}
	stsSrv := httptest.NewServer(sts)
	t.Cleanup(stsSrv.Close)
	conf := filepath.Join(t.TempDir(), "identities.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("user %s role %s\nuser %s role %s\n", alice.name, aliceRole, bob.name, bobRole)), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := sharedDir(t, s, "puwrite")
	mp, cacheDir := filepath.Join(dir, "mnt"), filepath.Join(dir, "cache")
	for _, d := range []string{mp, cacheDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(dir, "bucketfs.log")
	t.Cleanup(func() {
		s.cleanupMount(t, mp)
		// The daemon removes its staging directory as it exits: let it,
		// before the test's directory is removed.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if left, _ := filepath.Glob(filepath.Join(cacheDir, "staging", "*")); len(left) == 0 {
				break
			}
		}
		if t.Failed() {
			logTail(t, logFile)
		}
	})
	env := []string{"AWS_ACCESS_KEY_ID=" + hostKey, "AWS_SECRET_ACCESS_KEY=" + hostSecret, "AWS_ENDPOINT_URL_STS=" + stsSrv.URL}
	if r := s.exec(t, time.Minute, env, s.bin, "mount", "--endpoint-url", g.endpoint, "--path-style", "--region", s.region, "--log-file", logFile,
		"--identity", "per-user", "--identities", conf, "--allow-other", "--cache-dir", cacheDir, "--metadata-ttl", "5s",
		"--staging-size", "128MiB", "--staging-size-per-user", "48MiB", mp); r.err != nil {
		t.Fatalf("mount --identity per-user (writable): %v\n%s", r.err, clip(r.stderr))
	}
	as := func(u localUser, script string) result { return s.runAs(t, u.name, "", "sh", "-c", script) }
	ok := func(r result, what string) string {
		t.Helper()
		if r.err != nil {
			t.Errorf("%s: %v %s", what, r.err, r.stderr)
		}
		return r.stdout
	}
	gw := accessLog{path: g.accessLog}

	t.Run("alice writes her bucket and reads it back", func(t *testing.T) {
		mark := gw.mark(t)
		f := filepath.Join(mp, bA, "out", "alice.csv")
		ok(as(alice, fmt.Sprintf("mkdir -p %s && printf 'a,b\\n1,2\\n' > %s", filepath.Dir(f), f)), "write as alice")
		if got := ok(as(alice, "cat "+f), "cat as alice"); got != "a,b\n1,2\n" {
			t.Errorf("alice reads back %q", got)
		}
		if got := ok(as(alice, "ls "+filepath.Dir(f)), "ls as alice"); got != "alice.csv\n" {
			t.Errorf("alice's listing right after her write: %q", got)
		}
		reqs := gw.requests(t, mark, bA)
		wantSigned(t, reqs, "PutObject", "out/", aliceKey) // mkdir's marker
		wantSigned(t, reqs, "PutObject", "out/alice.csv", aliceKey)
	})

	t.Run("bob's writes where he may not are refused", func(t *testing.T) {
		mark := gw.mark(t)
		if r := as(bob, fmt.Sprintf("echo x > %s/%s/bob.csv", mp, bA)); !denied(r) {
			t.Errorf("bob's write to alice's bucket: %v %q, want Permission denied", r.err, r.stderr)
		}
		// D he may read, not write: S3 refuses the upload at close (dd
		// reports a failed close; the shell would not).
		f := filepath.Join(mp, bD, "bob.csv")
		if r := as(bob, "echo x | dd of="+f+" status=none"); !denied(r) {
			t.Errorf("bob's write to a bucket he may only read: %v %q, want Permission denied", r.err, r.stderr)
		}
		// From R: write.csv warns (R's close reports the failed upload
		// as a warning, not an error).
		if _, err := exec.LookPath("Rscript"); err == nil {
			r := s.runAs(t, bob.name, "", "Rscript", "-e", fmt.Sprintf("write.csv(mtcars, %q)", filepath.Join(mp, bD, "cars.csv")))
			t.Logf("write.csv as bob to a bucket he may only read: %v %q", r.err, strings.TrimSpace(r.stderr))
			if !strings.Contains(r.stderr, "Problem closing connection:  Permission denied") {
				t.Errorf("write.csv as bob to a bucket he may only read: no warning of the refused close")
			}
		}
		if r := as(bob, "ls "+filepath.Join(mp, bD)); r.err != nil || strings.Contains(r.stdout, "bob.csv") {
			t.Errorf("bob's listing after the refused write: %v %q, want no bob.csv", r.err, r.stdout)
		}
		for _, req := range gw.requests(t, mark, "") {
			if req.status < 300 && req.op != "ListObjectsV2" && req.op != "HeadObject" && req.op != "ListAllMyBuckets" && req.op != "HeadBucket" {
				t.Errorf("a refused write left %+v", req)
			}
		}
		if r := as(carol, fmt.Sprintf("echo x > %s/%s/carol.csv", mp, bC)); !denied(r) {
			t.Errorf("carol (no rule) writes: %v %q, want Permission denied", r.err, r.stderr)
		}
	})

	t.Run("both write the shared bucket, each with their own key", func(t *testing.T) {
		mark := gw.mark(t)
		ok(as(alice, fmt.Sprintf("echo alice > %s/%s/from-alice.txt", mp, bC)), "write as alice")
		ok(as(bob, fmt.Sprintf("echo bob > %s/%s/from-bob.txt", mp, bC)), "write as bob")
		reqs := gw.requests(t, mark, bC)
		wantSigned(t, reqs, "PutObject", "from-alice.txt", aliceKey)
		wantSigned(t, reqs, "PutObject", "from-bob.txt", bobKey)
		// Each sees the other's file at once (the writer's cache made
		// everyone else forget the name).
		if got := ok(as(bob, fmt.Sprintf("ls %s/%s", mp, bC)), "ls as bob"); !strings.Contains(got, "from-alice.txt") {
			t.Errorf("bob's listing right after alice's write: %q", got)
		}
		if got := ok(as(bob, fmt.Sprintf("cat %s/%s/from-alice.txt", mp, bC)), "cat as bob"); got != "alice\n" {
			t.Errorf("bob reads alice's file: %q", got)
		}
		// Bob renames his own file; alice's he may not (the delete guard
		// is per user).
		ok(as(bob, fmt.Sprintf("mv %s/%s/from-bob.txt %s/%s/by-bob.txt", mp, bC, mp, bC)), "mv as bob")
		if r := as(bob, fmt.Sprintf("rm %s/%s/from-alice.txt", mp, bC)); r.err == nil || !strings.Contains(r.stderr, "not permitted") {
			t.Errorf("bob removes alice's file: %v %q, want Operation not permitted", r.err, r.stderr)
		}
		ok(as(alice, fmt.Sprintf("rm %s/%s/from-alice.txt", mp, bC)), "rm as alice")
		reqs = gw.requests(t, mark, bC)
		wantSigned(t, reqs, "CopyObject", "by-bob.txt", bobKey)
		wantSigned(t, reqs, "DeleteObject", "from-bob.txt", bobKey)
		wantSigned(t, reqs, "DeleteObject", "from-alice.txt", aliceKey)
	})

	t.Run("an object being rewritten stays the old version for others", func(t *testing.T) {
		f := filepath.Join(mp, bC, "data.csv")
		ok(as(alice, "printf 'old content\\n' > "+f), "first version as alice")
		if got := ok(as(bob, "cat "+f), "cat as bob"); got != "old content\n" {
			t.Fatalf("bob reads %q", got)
		}
		// Alice truncates and rewrites it, holding it open 3 s; bob
		// meanwhile reads and stats the very inode the kernel shares.
		// From one process with one descriptor: a shell's redirections
		// dup and close descriptors, and every close uploads.
		if _, err := exec.LookPath("Rscript"); err != nil {
			t.Skip("needs Rscript")
		}
		done := make(chan result, 1)
		go func() {
			done <- s.runAs(t, alice.name, "", "Rscript", "-e",
				fmt.Sprintf(`con <- file(%q, "w"); cat("new", file = con); flush(con); Sys.sleep(3); close(con)`, f))
		}()
		time.Sleep(time.Second)
		if got := ok(as(bob, "cat "+f+"; stat -c %s "+f), "cat and stat as bob"); got != "old content\n12\n" {
			t.Errorf("bob while alice rewrites: %q, want the old version", got)
		}
		if got := ok(as(alice, "stat -c %s "+f), "stat as alice"); got != "3\n" {
			t.Errorf("alice while she rewrites: size %q, want 3", got)
		}
		ok(<-done, "rewrite as alice")
		if got := ok(as(bob, "cat "+f), "cat as bob after"); got != "new" {
			t.Errorf("bob after alice's close reads %q", got)
		}
	})

	t.Run("background parts are signed by the writer", func(t *testing.T) {
		mark := gw.mark(t)
		f := filepath.Join(mp, bA, "big.bin")
		// 40 MiB, then 3 s with the file still open before the close: the
		// parts written go out during those seconds, in the background.
		// One process (every close of a descriptor uploads: a shell's
		// redirection would close the child's copy early).
		if _, err := exec.LookPath("Rscript"); err != nil {
			t.Skip("needs Rscript")
		}
		ok(s.runAs(t, alice.name, "", "Rscript", "-e", fmt.Sprintf(`con <- file(%q, "wb"); writeBin(as.raw(sample(0:255, %d, TRUE)), con); Sys.sleep(3); close(con)`, f, 40<<20)),
			"write a large file from R as alice")
		reqs := gw.requests(t, mark, bA)
		var parts, done []accessRequest
		for _, r := range reqs {
			if r.key != "big.bin" {
				continue
			}
			if r.requester != aliceKey {
				t.Errorf("%s of big.bin signed by %s, want alice's %s", r.op, r.requester, aliceKey)
			}
			switch r.op {
			case "UploadPart":
				parts = append(parts, r)
			case "CompleteMultipartUpload":
				done = append(done, r)
			}
		}
		if len(parts) < 3 || len(done) != 1 {
			t.Fatalf("multipart upload of big.bin: %d parts, %d completions: %+v", len(parts), len(done), reqs)
		}
		early := done[0].at.Sub(parts[0].at)
		t.Logf("big.bin: %d parts, all by alice's key; the first %v before the completion", len(parts), early)
		if early < 2*time.Second {
			t.Errorf("first part %v before the completion, want it sent in the background (>= 2s before)", early)
		}
		if got := ok(as(alice, "stat -c %s "+f), "stat as alice"); strings.TrimSpace(got) != fmt.Sprint(40<<20) {
			t.Errorf("big.bin is %s bytes", got)
		}
	})

	t.Run("one user's share of the staging area", func(t *testing.T) {
		// 48 MiB each (--staging-size-per-user): a 50 MiB file fails
		// with ENOSPC for its writer, the log names her, and the others
		// still write.
		r := as(alice, fmt.Sprintf("dd if=/dev/zero of=%s/%s/quota.bin bs=1M count=50 status=none", mp, bC))
		if r.err == nil || !strings.Contains(r.stderr, "No space left on device") {
			t.Errorf("alice's 50 MiB past her 48 MiB share: %v %q, want No space left on device", r.err, r.stderr)
		}
		logged, _ := os.ReadFile(logFile)
		var named bool
		for _, l := range strings.Split(string(logged), "\n") {
			if strings.Contains(l, "share of the staging area is full") && strings.Contains(l, alice.name) {
				named = true
			}
		}
		if !named {
			t.Errorf("no log line names %s's full share of the staging area", alice.name)
		}
		// dd's close of its first descriptor (dup2'd to 1) uploaded the
		// empty file; its failed write must not replace it cut short.
		if r := as(alice, fmt.Sprintf("stat -c %%s %s/%s/quota.bin", mp, bC)); r.err == nil && strings.TrimSpace(r.stdout) != "0" {
			t.Errorf("quota.bin is %s bytes after its write failed: a cut-short object was uploaded", strings.TrimSpace(r.stdout))
		}
		ok(as(bob, fmt.Sprintf("dd if=/dev/zero of=%s/%s/bob-after.bin bs=1M count=8 status=none", mp, bC)), "bob writes once alice's share is full")
	})

	t.Run("staging is private to each user", func(t *testing.T) {
		mounts, err := filepath.Glob(filepath.Join(cacheDir, "staging", "*"))
		if err != nil || len(mounts) != 1 {
			t.Fatalf("staging directories %q, %v", mounts, err)
		}
		mine := filepath.Join(mounts[0], fmt.Sprint(alice.uid))
		// While a file is open, stat what is staged for it, as alice.
		got := ok(as(alice, fmt.Sprintf("exec 3>%s/%s/open.txt; echo x >&3; stat -c '%%a %%U' %s %s/*; exec 3>&-", mp, bC, mine, mine)), "stat staging as alice")
		want := fmt.Sprintf("700 %s\n600 %s\n", alice.name, alice.name)
		if got != want {
			t.Errorf("alice's staging directory and file: %q, want %q", got, want)
		}
		if fi, err := os.Stat(mounts[0]); err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("the mount's staging directory: %v %v, want 0711", fi.Mode(), err)
		}
		if r := as(bob, "ls "+mine); !denied(r) {
			t.Errorf("bob lists alice's staging directory: %v %q", r.err, r.stdout)
		}
		if r := as(bob, "ls "+mounts[0]); !denied(r) {
			t.Errorf("bob lists the mount's staging directory: %v %q", r.err, r.stdout)
		}
	})
}

// The versitygw accounts of the per-user tests: the host's (it only signs
// AssumeRole), alice's and bob's, and the roles a local STS maps to them.
const (
	hostKey, hostSecret   = "BFSHOSTKEY", "bfsHostSecret0123"
	aliceKey, aliceSecret = "BFSALICEKEY", "bfsAliceSecret0123"
	bobKey, bobSecret     = "BFSBOBKEY", "bfsBobSecret01234"
	aliceRole             = "arn:aws:iam::111122223333:role/alice-data"
	bobRole               = "arn:aws:iam::111122223333:role/bob-data"
)

// createPerUserAccounts makes the host's, alice's and bob's accounts in g.
func createPerUserAccounts(t *testing.T, g *iamGateway) {
	t.Helper()
	for _, u := range [][2]string{{hostKey, hostSecret}, {aliceKey, aliceSecret}, {bobKey, bobSecret}} {
		g.adminCmd(t, "create-user", "--access", u[0], "--secret", u[1], "--role", "user")
	}
}

// accessRequest is one line of versitygw's access log.
type accessRequest struct {
	op, key, requester string
	status             int
	at                 time.Time
}

// requests returns the requests for bucket ("" any) logged after mark.
func (l accessLog) requests(t *testing.T, mark int64, bucket string) []accessRequest {
	t.Helper()
	l.count(t, mark, bucket) // waits for the log to settle
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(mark, 0); err != nil {
		t.Fatal(err)
	}
	var out []accessRequest
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		b, op, ok := parseAccessLine(sc.Text())
		// OWNER BUCKET [DAY/MONTH/YEAR:TIME ZONE] IP REQUESTER ID OP KEY URI STATUS ...
		fs := strings.Fields(sc.Text())
		if !ok || len(fs) < 11 || (bucket != "" && b != bucket) {
			continue
		}
		at, _ := time.Parse("[02/January/2006:15:04:05 -0700]", fs[2]+" "+fs[3])
		var status int
		fmt.Sscan(fs[10], &status)
		out = append(out, accessRequest{op: op, key: fs[8], requester: fs[5], status: status, at: at})
	}
	return out
}

// wantSigned checks that reqs hold a successful op on key sent with the
// access key requester, and none with another key.
func wantSigned(t *testing.T, reqs []accessRequest, op, key, requester string) {
	t.Helper()
	found := false
	for _, r := range reqs {
		if r.op != op || r.key != key {
			continue
		}
		if r.requester != requester {
			t.Errorf("%s %s signed by %s, want %s", op, key, r.requester, requester)
		}
		found = found || r.status < 300
	}
	if !found {
		t.Errorf("no successful %s %s by %s in %+v", op, key, requester, reqs)
	}
}
