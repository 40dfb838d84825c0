package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMountErrors: a mount that cannot work must fail fast, say why in one
// line on stderr without leaking the secret, and leave no mount behind.
func TestMountErrors(t *testing.T) {
	s := need(t)
	bkt := s.bucket("errors")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("f\n")}})
	const wrongSecret = "wrongSecretE2E0123456789abcdefXYZ"
	missingBucket := s.bucket("nope")

	tests := []struct {
		name      string
		source    string
		env       []string
		missingMP bool           // mount point does not exist
		want      *regexp.Regexp // stderr must match
	}{
		{name: "wrong secret, all buckets", source: "",
			env:  []string{"AWS_SECRET_ACCESS_KEY=" + wrongSecret},
			want: regexp.MustCompile(`(?i)signature|credential|denied|auth|forbidden|403`)},
		{name: "wrong secret, one bucket", source: "s3://" + bkt,
			env:  []string{"AWS_SECRET_ACCESS_KEY=" + wrongSecret},
			want: regexp.MustCompile(`(?i)signature|credential|denied|auth|forbidden|403`)},
		{name: "nonexistent bucket", source: "s3://" + missingBucket,
			want: regexp.MustCompile(`(?i)` + regexp.QuoteMeta(missingBucket) + `|no such bucket|not found|does not exist`)},
		{name: "missing mount point", source: "s3://" + bkt, missingMP: true,
			want: regexp.MustCompile(`(?i)does-not-exist|no such file|not exist|not found`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mp := s.mountDir(t)
			if tc.missingMP {
				mp = filepath.Join(mp, "does-not-exist")
			}
			logFile := filepath.Join(t.TempDir(), "bucketfs.log")
			args := append([]string{"mount"}, s.mountOpts(logFile)...)
			if tc.source != "" {
				args = append(args, tc.source)
			}
			args = append(args, mp)
			t.Cleanup(func() { s.cleanupMount(t, mp) })

			r := s.exec(t, time.Minute, tc.env, s.bin, args...)
			t.Logf("exit %d after %v: %s", exitCode(r.err), r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if r.err == nil {
				t.Fatalf("bucketfs mount succeeded, want an error")
			}
			if exitCode(r.err) <= 0 {
				t.Errorf("bucketfs mount: %v, want a non-zero exit", r.err)
			}
			if r.took > 15*time.Second {
				t.Errorf("bucketfs mount took %v to fail, want a few seconds", r.took)
			}
			msg := strings.TrimRight(r.stderr, "\n")
			if msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("stderr should be exactly one line, got %q", clip(r.stderr))
			}
			if !tc.want.MatchString(msg) {
				t.Errorf("stderr %q does not match %s", msg, tc.want)
			}
			for _, leak := range []string{wrongSecret, s.secret} {
				if strings.Contains(r.stderr+r.stdout, leak) {
					t.Errorf("output contains the secret key")
				}
				if log, err := os.ReadFile(logFile); err == nil && strings.Contains(string(log), leak) {
					t.Errorf("the log file contains the secret key")
				}
			}
			if isMounted(t, mp) {
				t.Errorf("%s is a mount after a failed mount", mp)
			}
		})
	}
}
