package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWhoami: against versitygw (no STS) whoami names the source, says STS
// is not available, still counts the buckets and exits 0.
func TestWhoami(t *testing.T) {
	s := need(t)
	bkt := s.bucket("whoami")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("f\n")}})
	r := s.exec(t, time.Minute, nil, s.bin, "whoami", "--endpoint-url", s.endpoint, "--region", s.region)
	t.Logf("exit %d\n%s%s", exitCode(r.err), r.stdout, r.stderr)
	if r.err != nil {
		t.Fatalf("whoami: %v", r.err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^credentials\s+environment \(AWS_ACCESS_KEY_ID\)$`),
		regexp.MustCompile(`(?m)^expires\s+never \(long-term keys\)$`),
		regexp.MustCompile(`(?m)^identity\s+STS not available at this endpoint \(`),
		regexp.MustCompile(`(?m)^region\s+` + regexp.QuoteMeta(s.region) + ` \(from --region\)$`),
		regexp.MustCompile(`(?m)^endpoint\s+` + regexp.QuoteMeta(s.endpoint) + `$`),
		regexp.MustCompile(`(?m)^list buckets\s+allowed \([1-9][0-9]* buckets?\)$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("stdout does not match %s", want)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr not empty: %q", r.stderr)
	}
	if strings.Contains(r.stdout, s.secret) {
		t.Error("whoami printed the secret key")
	}
}

// TestBadCredentialMessages: each kind of bad input gives, from both
// whoami and mount, a non-zero exit and exactly one stderr line naming the
// cause and the fix, without echoing a secret; a failed mount leaves no
// mount behind. (AccessDenied on ListBuckets cannot be produced with
// versitygw, whose users may always list their own buckets; the whoami unit
// tests cover it with a fake server.)
func TestBadCredentialMessages(t *testing.T) {
	s := need(t)
	const (
		wrongSecret = "wrongSecretAuthE2E0123456789abcdefXYZ"
		staleToken  = "staleSessionTokenAuthE2E-0123456789"
	)
	noKeys := []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}
	deadIMDS := []string{"AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1"}
	tests := []struct {
		name string
		env  []string
		args []string
		want string // regexp for the message after "bucketfs CMD: "
	}{
		{name: "wrong secret", env: []string{"AWS_SECRET_ACCESS_KEY=" + wrongSecret},
			want: `the secret access key does not match the access key id \(SignatureDoesNotMatch\): check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key`},
		{name: "unknown access key", env: []string{"AWS_ACCESS_KEY_ID=AKNOSUCHKEYE2E0001"},
			want: `the server does not know this access key id \((InvalidAccessKeyId|XAdminUserNotFound)\): check AWS_ACCESS_KEY_ID`},
		// versitygw answers every session token it did not issue with
		// InvalidToken; AWS says ExpiredToken for an expired one (unit
		// tests cover that line).
		{name: "stale session token", env: []string{"AWS_SESSION_TOKEN=" + staleToken},
			want: `the session token is malformed or does not belong to this access key \(InvalidToken\): check AWS_SESSION_TOKEN, or unset it when using long-term keys`},
		{name: "unknown profile", args: []string{"--profile", "nope"},
			want: `profile "nope" is not in \S+ or \S+: add it \(aws configure --profile nope\), or pick another with --profile or AWS_PROFILE`},
		{name: "metadata unreachable, forced", env: deadIMDS, args: []string{"--credentials", "instance-role"},
			want: `--credentials instance-role: instance metadata at http://127.0.0.1:1 gave no credentials \(.+\): run on an EC2 instance with an IAM role attached`},
		{name: "metadata unreachable, no other source", env: append(append([]string{}, noKeys...), deadIMDS...),
			want: `no AWS credentials found \(tried environment variables, shared config files for profile "default", web identity, container and instance metadata, which did not answer\): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`},
		{name: "forced env without keys", env: noKeys, args: []string{"--credentials", "env"},
			want: `--credentials env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set: export both, or pick another --credentials source`},
	}
	for _, tc := range tests {
		for _, cmd := range []string{"whoami", "mount"} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				logFile := filepath.Join(t.TempDir(), "bucketfs.log")
				mp := s.mountDir(t)
				args := []string{cmd, "--endpoint-url", s.endpoint, "--region", s.region}
				if cmd == "mount" {
					args = append(args, "--path-style", "--log-file", logFile)
					t.Cleanup(func() { s.cleanupMount(t, mp) })
				}
				args = append(args, tc.args...)
				if cmd == "mount" {
					args = append(args, mp)
				}
				r := s.exec(t, time.Minute, tc.env, s.bin, args...)
				t.Logf("exit %d after %v: %s", exitCode(r.err), r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
				if code := exitCode(r.err); code != 1 {
					t.Errorf("exit code %d (%v), want 1", code, r.err)
				}
				if r.took > 20*time.Second {
					t.Errorf("took %v to fail", r.took)
				}
				msg := strings.TrimSuffix(r.stderr, "\n")
				re := regexp.MustCompile(`^bucketfs ` + cmd + `: ` + tc.want)
				if strings.Contains(msg, "\n") || !re.MatchString(msg) {
					t.Errorf("stderr %q is not one line matching %s", msg, re)
				}
				logData, _ := os.ReadFile(logFile)
				for _, secret := range []string{s.secret, wrongSecret, staleToken} {
					if strings.Contains(r.stdout+r.stderr+string(logData), secret) {
						t.Errorf("a secret is in the output or the log")
					}
				}
				if cmd == "mount" && isMounted(t, mp) {
					t.Errorf("%s is a mount after a failed mount", mp)
				}
			})
		}
	}
}
