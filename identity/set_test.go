package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store"
)

// TestMain lets the test binary be the profile helper: runHelper runs
// /proc/self/exe, which in a test is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HelperCommand {
		os.Exit(HelperMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: root-owned rules file, files of other users")
	}
}

var testUsers = map[uint32]User{
	1001: {Name: "alice", UID: 1001, GID: 1001, Groups: []string{"alice", "ds"}},
	1002: {Name: "bob", UID: 1002, GID: 1002, Groups: []string{"bob"}},
	1003: {Name: "mallory", UID: 1003, GID: 1003, Groups: []string{"mallory"}},
}

func newTestSet(t *testing.T, rules string, log *bytes.Buffer) *Set {
	t.Helper()
	needRoot(t)
	p := filepath.Join(t.TempDir(), "ids.conf")
	if err := os.WriteFile(p, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Path: p,
		Host: aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKHOST", "hostsecret", "")},
		Users: func(uid uint32) (User, error) {
			u, ok := testUsers[uid]
			return u, map[bool]error{true: nil, false: errors.New("unknown")}[ok]
		},
		Logger: slog.New(slog.NewTextHandler(log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestResolve(t *testing.T) {
	var log bytes.Buffer
	s := newTestSet(t, "user alice host\ngroup ds profile\nuser bob host\n", &log)
	ctx := func(uid uint32) context.Context { return WithCaller(context.Background(), Caller{UID: uid, GID: uid}) }

	pa, err := s.Resolve(ctx(1001))
	if err != nil || pa.User.Name != "alice" || pa.Rule.Source != SourceHost {
		t.Fatalf("alice: %+v, %v", pa, err)
	}
	pb, err := s.Resolve(ctx(1002))
	if err != nil || pb.Key == pa.Key {
		t.Fatalf("bob: %+v, %v (alice's key %s)", pb, err, pa.Key)
	}
	if cr, err := pa.Credentials.Retrieve(context.Background()); err != nil || cr.AccessKeyID != "AKHOST" {
		t.Errorf("host source gives %q, %v", cr.AccessKeyID, err)
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		log  string
	}{
		{"unmapped user", ctx(1003), "user=mallory uid=1003 why=\"no rule in "},
		{"unknown uid", ctx(4242), "user=4242 uid=4242 why=\"the user database does not know the uid\""},
		{"no caller", context.Background(), ""},
	} {
		_, err := s.Resolve(tc.ctx)
		if !errors.Is(err, ErrNoIdentity) || !errors.Is(err, store.ErrAccessDenied) {
			t.Errorf("%s: %v, want ErrNoIdentity (access denied)", tc.name, err)
		}
		if !strings.Contains(log.String(), tc.log) {
			t.Errorf("%s: log %q lacks %q", tc.name, log.String(), tc.log)
		}
	}
	if n := strings.Count(log.String(), "mallory"); n != 1 {
		s.Resolve(ctx(1003))
		t.Errorf("mallory's denial logged %d times, want once", n)
	}

	// Removing alice's rule takes effect at the reload: her own rule is
	// gone, and she falls to her group's.
	if err := os.WriteFile(s.Path(), []byte("group ds-other host\nuser bob host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx(1001)); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("alice after her rule was removed: %v", err)
	}
	if p, err := s.Resolve(ctx(1002)); err != nil || p != pb {
		t.Errorf("bob after a reload keeps his principal: %v, %v", p, err)
	}
	// A broken file keeps the rules in force.
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("reload of a world-writable file succeeded")
	}
	if _, err := s.Resolve(ctx(1002)); err != nil {
		t.Errorf("bob after a refused reload: %v", err)
	}
	if st := s.Stats(); st.Rules != 2 || st.Reloads != 1 || st.Denied < 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestTokenFile(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	write := func(name string, uid int, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(" token-of-"+name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootTok := write("root-owned", 0, 0o600)
	userTok := write("user-owned", 1001, 0o600)
	otherTok := write("bob-owned", 1002, 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(rootTok, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard")
	if err := os.Link(write("linked", 1001, 0o600), hard); err != nil {
		t.Fatal(err)
	}
	writable := write("writable", 0, 0o666)
	os.Chmod(writable, 0o666)
	for _, tc := range []struct {
		path, want, err string
	}{
		{rootTok, "token-of-root-owned", ""},
		{userTok, "token-of-user-owned", ""},
		{otherTok, "", "owned by uid 1002, neither root nor the user"},
		{link, "", "is a symbolic link: refused"},
		{hard, "", "has 2 hard links: refused"},
		{writable, "", "writable by group or others"},
		{filepath.Join(dir, "missing"), "", "no such file"},
	} {
		got, err := tokenFile{path: tc.path, uid: 1001}.GetIdentityToken()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || len(got) != 0 {
				t.Errorf("%s: %q, %v; want an error with %q", filepath.Base(tc.path), got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q", filepath.Base(tc.path), got, err, tc.want)
		}
	}
}

// TestProfileHelper: a user's profile is read by a process running as the
// user: a credentials file linked to a root-only file gives nothing, and a
// credential_process runs with the user's uid.
func TestProfileHelper(t *testing.T) {
	needRoot(t)
	const uid = 65534 // nobody
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	secret := filepath.Join(base, "root-only")
	if err := os.WriteFile(secret, []byte("[default]\naws_access_key_id = AKROOTSECRET\naws_secret_access_key = rootsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := func(files map[string]string) User {
		h, err := os.MkdirTemp(base, "home")
		if err != nil {
			t.Fatal(err)
		}
		os.Mkdir(filepath.Join(h, ".aws"), 0o700)
		for name, body := range files {
			p := filepath.Join(h, ".aws", name)
			if strings.HasPrefix(body, "->") {
				err = os.Symlink(strings.TrimPrefix(body, "->"), p)
			} else {
				err = os.WriteFile(p, []byte(body), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			os.Lchown(p, uid, uid)
		}
		os.Chown(filepath.Join(h, ".aws"), uid, uid)
		os.Chown(h, uid, uid)
		return User{Name: "nobody", UID: uid, GID: uid, GIDs: []uint32{uid}, Home: h}
	}
	run := runHelper("us-east-1")
	for _, tc := range []struct {
		name  string
		files map[string]string
		key   string
		err   string
	}{
		{"own keys", map[string]string{"credentials": "[default]\naws_access_key_id = AKUSER\naws_secret_access_key = usersecret\n"}, "AKUSER", ""},
		{"credentials linked to a root-only file", map[string]string{"credentials": "->" + secret}, "", "reading the profile of nobody as that user"},
		{"config linked to a root-only file", map[string]string{"config": "->" + secret}, "", "reading the profile of nobody as that user"},
		{"credential_process runs as the user", map[string]string{"config": "[default]\ncredential_process = sh -c 'printf \"{\\\"Version\\\":1,\\\"AccessKeyId\\\":\\\"AKUID%s\\\",\\\"SecretAccessKey\\\":\\\"s\\\"}\" $(id -u)'\n"}, fmt.Sprintf("AKUID%d", uid), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr, err := run(context.Background(), home(tc.files), "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || cr.AccessKeyID != "" {
					t.Fatalf("got %q, %v; want an error with %q", cr.AccessKeyID, err, tc.err)
				}
				if strings.Contains(err.Error(), "rootsecret") || strings.Contains(err.Error(), "AKROOTSECRET") {
					t.Fatalf("the error shows the root-only file: %v", err)
				}
				return
			}
			if err != nil || cr.AccessKeyID != tc.key {
				t.Fatalf("got %q, %v; want %q", cr.AccessKeyID, err, tc.key)
			}
		})
	}
}

// TestFailedRetrievalHeld: a broken source is asked again only after
// retryFailedAfter, however many requests come meanwhile.
func TestFailedRetrievalHeld(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	calls := 0
	s := &Set{opts: Options{Now: func() time.Time { return now }}, log: slog.New(slog.DiscardHandler)}
	c := &counting{p: &Principal{User: User{Name: "alice"}, Rule: Rule{Name: "alice", Source: SourceRole}}, log: s,
		src: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			calls++
			if calls == 1 {
				return aws.Credentials{}, errors.New("sts: AccessDenied")
			}
			return aws.Credentials{AccessKeyID: "AK"}, nil
		})}
	for i := 0; i < 5; i++ {
		if _, err := c.Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "credentials of user alice") {
			t.Fatalf("retrieval %d: %v", i, err)
		}
	}
	now = now.Add(retryFailedAfter)
	if cr, err := c.Retrieve(context.Background()); err != nil || cr.AccessKeyID != "AK" || calls != 2 {
		t.Fatalf("after %v: %q, %v, %d calls", retryFailedAfter, cr.AccessKeyID, err, calls)
	}
}

// TestWithin: a request is resolved once; what it carries answers the rest
// of the request (the cache's scope, the writer), and a user's two keys are
// the principal's (per rule) and the Linux user's (the same across rules).
func TestWithin(t *testing.T) {
	var log bytes.Buffer
	s := newTestSet(t, "user alice host\n", &log)
	req := WithCaller(context.Background(), Caller{UID: 1001, GID: 1001})
	ctx, p, err := s.Within(req)
	if err != nil || p.User.Name != "alice" {
		t.Fatalf("Within: %+v, %v", p, err)
	}
	if p.Owner != "uid 1001" {
		t.Errorf("Owner = %q, want uid 1001", p.Owner)
	}
	if c, ok := CallerFrom(p.Background); !ok || c.UID != 1001 || c.GID != 1001 {
		t.Errorf("Background's caller = %+v, %v", c, ok)
	}
	resolves := s.resolves.Load()
	for range 3 {
		if key, err := s.Scope(ctx); err != nil || key != p.Key {
			t.Fatalf("Scope of the resolved request = %q, %v; want %q", key, err, p.Key)
		}
		if again, _, err := s.Within(ctx); err != nil || again != ctx {
			t.Fatalf("Within of a resolved request made a new context (%v)", err)
		}
	}
	if n := s.resolves.Load() - resolves; n != 0 {
		t.Errorf("a resolved request was resolved %d more times", n)
	}

	// Another rule for alice: a new principal (the cache's key), the same
	// Linux user (what she is writing stays hers).
	writeRules(t, s, "user alice profile\n")
	_, p2, err := s.Within(req)
	if err != nil || p2.Key == p.Key || p2.Owner != p.Owner {
		t.Errorf("after the new rule: key %q (was %q), owner %q (was %q), %v", p2.Key, p.Key, p2.Owner, p.Owner, err)
	}

	if _, _, err := s.Within(WithCaller(context.Background(), Caller{UID: 1003})); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("mallory: %v, want ErrNoIdentity", err)
	}
}

func writeRules(t *testing.T, s *Set, rules string) {
	t.Helper()
	if err := os.WriteFile(s.Path(), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
}
