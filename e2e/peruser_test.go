package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// One shared mount, each user signing as themselves (--identity per-user),
// against a versitygw of its own with IAM accounts: alice owns bucket A,
// bob bucket B, and alice's C is readable by bob too. The host's key (an
// account with no bucket) only signs AssumeRole, at a local STS that maps
// role ARNs (and bob's web identity token) to the accounts' keys.

// fakeSTS answers AssumeRole (signed by the host key), AssumeRoleWithWebIdentity
// and GetCallerIdentity with the keys of versitygw accounts; it records
// every AssumeRole.
type fakeSTS struct {
	hostKey string
	roles   map[string][2]string // role ARN -> access key, secret
	tokens  map[string]string    // web identity token -> role ARN it may assume
	mu      sync.Mutex
	calls   []string // "Action role session source-identity"
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	action, role := r.Form.Get("Action"), r.Form.Get("RoleArn")
	auth := r.Header.Get("Authorization")
	fail := func(code string) {
		w.WriteHeader(403)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error></ErrorResponse>`, code, code)
	}
	f.mu.Lock()
	f.calls = append(f.calls, strings.Join([]string{action, role, r.Form.Get("RoleSessionName"), r.Form.Get("SourceIdentity")}, " "))
	f.mu.Unlock()
	keys, known := f.roles[role]
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	creds := func() string {
		// An empty session token: versitygw refuses tokens it did not issue.
		return fmt.Sprintf(`<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken></SessionToken><Expiration>%s</Expiration></Credentials>`,
			keys[0], keys[1], exp)
	}
	switch action {
	case "AssumeRole":
		if !strings.Contains(auth, "Credential="+f.hostKey+"/") {
			fail("InvalidClientTokenId")
			return
		}
		if !known {
			fail("AccessDenied")
			return
		}
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><SourceIdentity>%s</SourceIdentity><AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROA:%s</AssumedRoleId></AssumedRoleUser>%s</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`,
			xmlText(r.Form.Get("SourceIdentity")), xmlText(role), xmlText(r.Form.Get("RoleSessionName")), xmlText(r.Form.Get("RoleSessionName")), creds())
	case "AssumeRoleWithWebIdentity":
		if !known || f.tokens[r.Form.Get("WebIdentityToken")] != role {
			fail("InvalidIdentityToken")
			return
		}
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>x</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>%s</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
			xmlText(role), xmlText(r.Form.Get("RoleSessionName")), creds())
	case "GetCallerIdentity":
		for arn, k := range f.roles {
			if strings.Contains(auth, "Credential="+k[0]+"/") {
				fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>%s</Arn><UserId>%s</UserId><Account>111122223333</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
					xmlText(strings.Replace(arn, ":role/", ":assumed-role/", 1)), k[0])
				return
			}
		}
		fail("InvalidClientTokenId")
	default:
		fail("InvalidAction")
	}
}

func (f *fakeSTS) sawCall(want string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == want {
			return true
		}
	}
	return false
}

func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func TestPerUserIdentity(t *testing.T) {
	s := need(t)
	us := needUsers(t, "bfs-alice", "bfs-bob", "bfs-carol", "bfs-dave")
	alice, bob, carol, dave := us[0], us[1], us[2], us[3]
	g := startIAMGateway(t)
	gwLog := accessLog{path: g.accessLog}
	createPerUserAccounts(t, g)
	bA, bB, bC := s.bucket("pu-a"), s.bucket("pu-b"), s.bucket("pu-c")
	g.adminCmd(t, "create-bucket", "--owner", aliceKey, "--bucket", bA)
	g.adminCmd(t, "create-bucket", "--owner", bobKey, "--bucket", bB)
	g.adminCmd(t, "create-bucket", "--owner", aliceKey, "--bucket", bC, "--object-ownership", "BucketOwnerPreferred", "--grant-read", bobKey)
	ctx := context.Background()
	shared := pseudoRandom(17, 3<<20)
	for _, o := range []struct {
		c           *s3client
		bucket, key string
		body        []byte
	}{
		{newS3Client(g.endpoint, aliceKey, aliceSecret, s.region), bA, "dir/alice.csv", []byte("a,b\n1,2\n")},
		{newS3Client(g.endpoint, bobKey, bobSecret, s.region), bB, "dir/secret.csv", []byte("bob's secret\n")},
		{newS3Client(g.endpoint, aliceKey, aliceSecret, s.region), bC, "shared.bin", shared},
	} {
		if err := o.c.put(ctx, o.bucket, o.key, o.body); err != nil {
			t.Fatalf("put %s/%s: %v", o.bucket, o.key, err)
		}
	}

	sts := &fakeSTS{hostKey: hostKey, roles: map[string][2]string{aliceRole: {aliceKey, aliceSecret}, bobRole: {bobKey, bobSecret}},
		tokens: map[string]string{"token-of-bob": bobRole}}
	stsSrv := httptest.NewServer(sts)
	t.Cleanup(stsSrv.Close)

	// The rules: alice assumes a role, bob's identity comes from a web
	// identity token file of his own, carol has none.
	etc := t.TempDir() // root's, 0700
	tokens := filepath.Join(etc, "tokens")
	if err := os.Mkdir(tokens, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tokens, bob.name), []byte("token-of-bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// dave's own profile (bob's account's keys, in his home), read as dave.
	daveHome := userHomeDir(t, dave, map[string]string{"credentials": fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", bobKey, bobSecret)})
	conf := filepath.Join(etc, "identities.conf")
	rules := fmt.Sprintf("user %s role %s\nuser %s web-identity %s %s/%%u\nuser %s profile\n", alice.name, aliceRole, bob.name, bobRole, tokens, dave.name)
	if err := os.WriteFile(conf, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	// The host's identity comes from (fake) instance metadata, as on EC2;
	// it signs only AssumeRole.
	imds := &roleIMDS{}
	imdsSrv := httptest.NewServer(imds)
	t.Cleanup(imdsSrv.Close)
	imds.set(hostKey, hostSecret, time.Now().Add(time.Hour), false)
	env := append(metadataOnlyEnv(t, s, imdsSrv.URL), "AWS_ENDPOINT_URL_STS="+stsSrv.URL)
	run := func(args ...string) result {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, s.bin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return result{stdout: out.String(), stderr: errb.String(), err: err}
	}
	dir := sharedDir(t, s, "peruser")
	mp := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "bucketfs.log")
	mountArgs := []string{"mount", "--endpoint-url", g.endpoint, "--path-style", "--region", s.region, "--log-file", logFile,
		"--identity", "per-user", "--identities", conf, "--allow-other", "--read-only", "--metadata-ttl", "5s", mp}

	t.Run("group-writable rules refused", func(t *testing.T) {
		os.Chmod(conf, 0o664)
		defer os.Chmod(conf, 0o644)
		r := run(mountArgs...)
		if r.err == nil || !strings.Contains(r.stderr, "writable by group or others") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("mount with a group-writable rules file: %v %q, want one line about it", r.err, r.stderr)
		}
		if isMounted(t, mp) {
			t.Fatal("a refused mount is mounted")
		}
	})

	t.Cleanup(func() {
		s.cleanupMount(t, mp)
		if t.Failed() {
			logTail(t, logFile)
		}
	})
	if r := run(mountArgs...); r.err != nil {
		t.Fatalf("mount --identity per-user: %v\n%s", r.err, clip(r.stderr))
	}
	as := func(u localUser, args ...string) result { return s.runAs(t, u.name, "", args...) }
	ok := func(r result, what string) string {
		t.Helper()
		if r.err != nil {
			t.Errorf("%s: %v %s", what, r.err, r.stderr)
		}
		return r.stdout
	}

	t.Run("each user sees their own buckets", func(t *testing.T) {
		if got := ok(as(alice, "ls", mp), "ls as alice"); !strings.Contains(got, bA) || !strings.Contains(got, bC) || strings.Contains(got, bB) {
			t.Errorf("ls as alice = %q, want %s and %s, not %s", got, bA, bC, bB)
		}
		if got := ok(as(bob, "ls", mp), "ls as bob"); !strings.Contains(got, bB) || strings.Contains(got, bA) {
			t.Errorf("ls as bob = %q, want %s, not %s", got, bB, bA)
		}
	})

	t.Run("no byte of bob's reaches alice", func(t *testing.T) {
		secret := filepath.Join(mp, bB, "dir", "secret.csv")
		if got := ok(as(bob, "cat", secret), "cat as bob"); got != "bob's secret\n" {
			t.Fatalf("bob reads %q", got)
		}
		if got := ok(as(bob, "ls", "-lR", filepath.Join(mp, bB)), "ls -lR as bob"); !strings.Contains(got, "secret.csv") {
			t.Fatalf("ls -lR as bob = %q", got)
		}
		// Now in the cache, the page cache and the kernel's entries;
		// alice gets none of it.
		for _, cmd := range [][]string{{"cat", secret}, {"stat", secret}, {"ls", filepath.Join(mp, bB)}, {"ls", filepath.Join(mp, bB, "dir")}, {"head", "-c1", secret}} {
			r := as(alice, cmd...)
			if !denied(r) || strings.Contains(r.stdout, "secret") {
				t.Errorf("%s as alice: %v %q %q, want Permission denied", strings.Join(cmd, " "), r.err, r.stdout, r.stderr)
			}
		}
		if got := ok(as(bob, "cat", secret), "cat as bob again"); got != "bob's secret\n" {
			t.Errorf("bob reads %q after alice was refused", got)
		}
	})

	t.Run("a shared file is fetched once", func(t *testing.T) {
		want := sha256.Sum256(shared)
		file := filepath.Join(mp, bC, "shared.bin")
		var gets []int
		for _, u := range []localUser{alice, bob} {
			mark := gwLog.mark(t)
			got := ok(as(u, "sha256sum", file), "sha256sum as "+u.name)
			if !strings.HasPrefix(got, hex.EncodeToString(want[:])) {
				t.Errorf("sha256 as %s = %q", u.name, got)
			}
			c := gwLog.count(t, mark, bC)
			gets = append(gets, c["GetObject"])
			if u == bob && c["HeadObject"]+lists(c) == 0 {
				t.Errorf("bob's open sent no request of his own (HEAD or LIST): %v", c)
			}
		}
		t.Logf("GETs of a 3 MiB file: %d for alice, %d for bob after her", gets[0], gets[1])
		if gets[0] == 0 || gets[1] != 0 {
			t.Errorf("GETs %v: want the file fetched by the first reader only", gets)
		}
	})

	t.Run("files show as the caller's", func(t *testing.T) {
		// Each user, one right after the other on the same inodes: the
		// kernel keeps no attributes on a per-user mount, so each stat
		// names its own caller. The root is everyone's: the mount's.
		dirC, file := filepath.Join(mp, bC), filepath.Join(mp, bC, "shared.bin")
		for i := 0; i < 3; i++ {
			for _, u := range []localUser{alice, bob} {
				want := fmt.Sprintf("%d:%d\n%d:%d\n0:0\n", u.uid, u.gid, u.uid, u.gid)
				if got := ok(as(u, "stat", "-c", "%u:%g", dirC, file, mp), "stat as "+u.name); got != want {
					t.Errorf("stat as %s (uid %d) of %s, %s and the root = %q, want %q", u.name, u.uid, dirC, file, got, want)
				}
			}
		}
		// ls -ln of a directory (READDIRPLUS, then a LOOKUP of each name).
		got := ok(as(bob, "ls", "-ln", dirC), "ls -ln as bob")
		if want := fmt.Sprintf(" %d %d ", bob.uid, bob.gid); !strings.Contains(got, want) || strings.Contains(got, fmt.Sprintf(" %d %d ", alice.uid, alice.gid)) {
			t.Errorf("ls -ln as bob = %q, want owner %q throughout", got, want)
		}
	})

	t.Run("a user without a rule gets EACCES", func(t *testing.T) {
		for _, cmd := range [][]string{{"ls", mp}, {"ls", filepath.Join(mp, bC)}, {"cat", filepath.Join(mp, bC, "shared.bin")}} {
			if r := as(carol, cmd...); !denied(r) {
				t.Errorf("%s as carol: %v %q %q, want Permission denied", strings.Join(cmd, " "), r.err, r.stdout, r.stderr)
			}
		}
		b, _ := os.ReadFile(logFile)
		if !bytes.Contains(b, []byte("user="+carol.name)) || !bytes.Contains(b, []byte("no rule in")) {
			t.Errorf("the log does not name %s and why", carol.name)
		}
	})

	t.Run("a user's own profile", func(t *testing.T) {
		if got := ok(as(dave, "cat", filepath.Join(mp, bB, "dir", "secret.csv")), "cat as dave"); got != "bob's secret\n" {
			t.Errorf("dave (bob's keys in his ~/.aws/credentials) reads %q", got)
		}
		if r := as(dave, "ls", filepath.Join(mp, bA)); !denied(r) {
			t.Errorf("ls of alice's bucket as dave: %v %q, want Permission denied", r.err, r.stderr)
		}
		_ = daveHome
	})

	t.Run("status shows identities", func(t *testing.T) {
		got := ok(s.exec(t, time.Minute, nil, s.bin, "status", mp), "status")
		if !strings.Contains(got, "identities   per user: 3 rules; in use 3 (1 profile, 1 role, 1 web-identity)") ||
			strings.Contains(got, aliceSecret) || strings.Contains(got, bobSecret) {
			t.Errorf("status:\n%s", got)
		}
	})

	t.Run("CloudTrail names the person", func(t *testing.T) {
		if want := fmt.Sprintf("AssumeRole %s %s %s", aliceRole, alice.name, alice.name); !sts.sawCall(want) {
			t.Errorf("no %q among the STS calls %q", want, sts.calls)
		}
		if want := fmt.Sprintf("AssumeRoleWithWebIdentity %s %s ", bobRole, bob.name); !sts.sawCall(want) {
			t.Errorf("no %q among the STS calls %q", want, sts.calls)
		}
	})

	t.Run("whoami --user", func(t *testing.T) {
		r := run("whoami", "--user", alice.name, "--identities", conf,
			"--endpoint-url", g.endpoint, "--path-style", "--region", s.region)
		t.Logf("whoami --user %s:\n%s", alice.name, r.stdout)
		if r.err != nil || !strings.Contains(r.stdout, "role "+aliceRole) || !strings.Contains(r.stdout, "assumed-role/alice-data") ||
			!strings.Contains(r.stdout, "allowed (2 buckets)") || strings.Contains(r.stdout, aliceSecret) {
			t.Errorf("whoami --user %s: %v\n%s%s", alice.name, r.err, r.stdout, r.stderr)
		}
		r = run("whoami", "--user", carol.name, "--identities", conf, "--endpoint-url", g.endpoint, "--path-style")
		if r.err == nil || !strings.Contains(r.stderr, "no rule") {
			t.Errorf("whoami --user %s: %v %q, want a failure naming no rule", carol.name, r.err, r.stderr)
		}
	})

	t.Run("removing a rule and SIGHUP", func(t *testing.T) {
		a := filepath.Join(mp, bA, "dir", "alice.csv")
		ok(as(alice, "cat", a), "cat as alice")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("user %s web-identity %s %s/%%u\n", bob.name, bobRole, tokens)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(daemonPID(t, mp), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second) // the metadata TTL
		for {
			r := as(alice, "cat", a)
			if denied(r) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("alice still reads %s 5s after her rule was removed: %v %q", a, r.err, r.stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !isMounted(t, mp) {
			t.Fatal("SIGHUP unmounted a per-user mount")
		}
		ok(as(bob, "ls", filepath.Join(mp, bC)), "ls as bob after the reload")
	})
}

// userHomeDir gives u the home directory the user database names, with
// files in ~/.aws, for the test only (removed afterwards if it made it).
func userHomeDir(t *testing.T, u localUser, aws map[string]string) string {
	t.Helper()
	pw, err := user.Lookup(u.name)
	if err != nil {
		t.Fatal(err)
	}
	home := pw.HomeDir
	if !strings.HasPrefix(home, "/home/") {
		t.Skipf("%s's home %s is not under /home", u.name, home)
	}
	if _, err := os.Stat(home); os.IsNotExist(err) {
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(home) })
	}
	dot := filepath.Join(home, ".aws")
	if err := os.MkdirAll(dot, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range aws {
		if err := os.WriteFile(filepath.Join(dot, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{home, dot, filepath.Join(dot, "credentials"), filepath.Join(dot, "config")} {
		_ = os.Lchown(p, u.uid, u.gid)
	}
	return home
}

// delayline starts bench/delayline in front of target with the given
// delay and returns its http:// address.
func delayline(t *testing.T, target, delay string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "delayline")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/bucketfs/bucketfs/bench/delayline").CombinedOutput(); err != nil {
		t.Fatalf("building delayline: %v\n%s", err, out)
	}
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(bin, "--target", target, "--delay", delay, "--addr-file", addrFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if b, err := os.ReadFile(addrFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return "http://" + string(bytes.TrimSpace(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("delayline did not start")
	return ""
}

// metadataOnlyEnv is the suite's environment without its keys and AWS
// files, with instance metadata at imdsURL the only source of credentials.
func metadataOnlyEnv(t *testing.T, s *suite, imdsURL string) []string {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range s.env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED",
			"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsURL, "AWS_CONFIG_FILE="+empty, "AWS_SHARED_CREDENTIALS_FILE="+empty)
}
