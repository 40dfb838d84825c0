package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// suite is what every e2e test shares: the binaries under test, the server
// and the environment subprocesses run with.
type suite struct {
	bin      string // bucketfs binary (BUCKETFS_BIN)
	seedBin  string // tools/s3seed, built once in TestMain
	endpoint string
	access   string
	secret   string
	region   string
	log      accessLog
	s3       *s3client
	runID    string   // makes bucket names unique per run on a shared server
	env      []string // environment of every subprocess
	tmp      string   // removed when the tests end
}

var (
	the      *suite
	setupErr error
)

func TestMain(m *testing.M) {
	if os.Getenv("BUCKETFS_E2E") != "" {
		the, setupErr = setup()
	}
	code := m.Run()
	if the != nil {
		// Every mount is undone by its test; never remove through one
		// that is left.
		if err := removeOneFS(the.tmp); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		}
	}
	os.Exit(code)
}

// need returns the suite, skipping the test when e2e is not enabled and
// failing it when e2e is enabled but the setup failed.
func need(t *testing.T) *suite {
	t.Helper()
	if os.Getenv("BUCKETFS_E2E") == "" {
		t.Skip("end-to-end test: set BUCKETFS_E2E=1 (scripts/test does)")
	}
	if setupErr != nil {
		t.Fatalf("e2e setup: %v", setupErr)
	}
	return the
}

func setup() (*suite, error) {
	s := &suite{
		bin:      os.Getenv("BUCKETFS_BIN"),
		endpoint: os.Getenv("BUCKETFS_TEST_S3_ENDPOINT"),
		access:   os.Getenv("AWS_ACCESS_KEY_ID"),
		secret:   os.Getenv("AWS_SECRET_ACCESS_KEY"),
		region:   os.Getenv("AWS_REGION"),
		log:      accessLog{path: os.Getenv("BUCKETFS_VGW_ACCESS_LOG")},
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	for name, v := range map[string]string{
		"BUCKETFS_BIN": s.bin, "BUCKETFS_TEST_S3_ENDPOINT": s.endpoint,
		"AWS_ACCESS_KEY_ID": s.access, "AWS_SECRET_ACCESS_KEY": s.secret,
		"BUCKETFS_VGW_ACCESS_LOG": s.log.path,
	} {
		if v == "" {
			return nil, fmt.Errorf("%s is not set", name)
		}
	}
	if !filepath.IsAbs(s.bin) {
		return nil, fmt.Errorf("BUCKETFS_BIN=%s must be an absolute path", s.bin)
	}
	if fi, err := os.Stat(s.bin); err != nil || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("BUCKETFS_BIN=%s is not an executable file (%v)", s.bin, err)
	}
	if _, err := os.Stat(s.log.path); err != nil {
		return nil, fmt.Errorf("BUCKETFS_VGW_ACCESS_LOG: %w", err)
	}
	for _, tool := range []string{"fusermount3", "Rscript", "sha256sum", "find", "stat", "ls", "cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (scripts/test installs it)", tool)
		}
	}
	var err error
	if s.tmp, err = os.MkdirTemp("", "bucketfs-e2e-suite-"); err != nil {
		return nil, err
	}
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	s.runID = hex.EncodeToString(id)
	s.s3 = newS3Client(s.endpoint, s.access, s.secret, s.region)

	// Subprocesses get the test credentials and nothing from the host's
	// AWS files or instance metadata.
	cfg := filepath.Join(s.tmp, "aws-config")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		return nil, err
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "AWS_CA_BUNDLE":
			// Kept: users have it and the SDK treats it specially.
		case strings.HasPrefix(k, "AWS_"):
			continue
		}
		s.env = append(s.env, kv)
	}
	s.env = append(s.env,
		"AWS_ACCESS_KEY_ID="+s.access, "AWS_SECRET_ACCESS_KEY="+s.secret,
		"AWS_REGION="+s.region, "AWS_DEFAULT_REGION="+s.region,
		"AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+cfg,
		"AWS_EC2_METADATA_DISABLED=true")

	s.seedBin = filepath.Join(s.tmp, "s3seed")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", s.seedBin,
		"github.com/bucketfs/bucketfs/tools/s3seed").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("building tools/s3seed: %v\n%s", err, out)
	}
	return s, nil
}

// bucket returns a bucket name unique to this run.
func (s *suite) bucket(name string) string {
	return fmt.Sprintf("e2e-%s-%s", s.runID, name)
}

// result is what a finished subprocess left.
type result struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

// exec runs a command with the suite's environment (plus extra variables,
// which win) and a deadline. Output goes through files rather than pipes: a
// daemon that inherits them must not keep the caller waiting.
func (s *suite) exec(t *testing.T, timeout time.Duration, extraEnv []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append([]string{}, s.env...), extraEnv...)
	dir := t.TempDir()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outF, errF
	start := time.Now()
	runErr := cmd.Run()
	took := time.Since(start)
	outF.Close()
	errF.Close()
	stdout, _ := os.ReadFile(outF.Name())
	stderr, _ := os.ReadFile(errF.Name())
	if ctx.Err() != nil {
		runErr = fmt.Errorf("timed out after %v: %w", timeout, runErr)
	}
	return result{stdout: string(stdout), stderr: string(stderr), err: runErr, took: took}
}

// must runs a command and fails the test if it fails.
func (s *suite) must(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	r := s.exec(t, timeout, nil, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", name, strings.Join(args, " "), r.err, clip(r.stderr))
	}
	return r.stdout
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// writeTree lays files out under root; a key ending in "/" makes an empty
// directory, which s3seed uploads as a "dir/" marker.
func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if strings.HasSuffix(rel, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// seedDir uploads a local tree with s3seed: each top-level directory of dir
// is a bucket.
func (s *suite) seedDir(t *testing.T, dir string) {
	t.Helper()
	r := s.exec(t, 20*time.Minute, nil, s.seedBin, "--endpoint-url", s.endpoint, "--path-style", dir)
	if r.err != nil {
		t.Fatalf("s3seed %s: %v\n%s", dir, r.err, clip(r.stderr))
	}
	t.Logf("seeded %s in %v", dir, r.took.Round(time.Millisecond))
}

// seedBuckets uploads files (bucket -> key -> content).
func (s *suite) seedBuckets(t *testing.T, buckets map[string]map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	for b, files := range buckets {
		if err := os.MkdirAll(filepath.Join(dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
		writeTree(t, filepath.Join(dir, b), files)
	}
	s.seedDir(t, dir)
}

var seedLineRE = regexp.MustCompile(`^(\S+)\s+([0-9a-f]{64})$`)

// seedRandom uploads deterministic random objects ("BUCKET/KEY:SIZE") and
// returns the SHA-256 s3seed printed for each key.
func (s *suite) seedRandom(t *testing.T, specs ...string) map[string]string {
	t.Helper()
	args := []string{"--endpoint-url", s.endpoint, "--path-style"}
	for _, sp := range specs {
		args = append(args, "--random", sp)
	}
	r := s.exec(t, 20*time.Minute, nil, s.seedBin, args...)
	if r.err != nil {
		t.Fatalf("s3seed %v: %v\n%s", specs, r.err, clip(r.stderr))
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		if m := seedLineRE.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			sums[m[1]] = m[2]
		}
	}
	t.Logf("seeded %v in %v", specs, r.took.Round(time.Millisecond))
	return sums
}

// mountOpts are the flags every mount of the test server needs.
func (s *suite) mountOpts(logFile string) []string {
	return []string{"--endpoint-url", s.endpoint, "--path-style", "--region", s.region, "--log-file", logFile}
}

// mount mounts source ("" for all buckets, else s3://B[/P]) on a fresh
// directory and returns it; the mount is undone when the test ends.
func (s *suite) mount(t *testing.T, source string, flags ...string) string {
	t.Helper()
	mp := s.mountDir(t)
	s.mountAt(t, mp, source, flags...)
	return mp
}

// mountAt is mount on the directory mp; it returns the mount's log file.
func (s *suite) mountAt(t *testing.T, mp, source string, flags ...string) (logFile string) {
	t.Helper()
	logFile = filepath.Join(t.TempDir(), "bucketfs.log")
	args := append([]string{"mount"}, s.mountOpts(logFile)...)
	args = append(args, flags...)
	if source != "" {
		args = append(args, source)
	}
	args = append(args, mp)
	t.Cleanup(func() {
		s.cleanupMount(t, mp)
		if t.Failed() {
			logTail(t, logFile)
		}
	})
	r := s.exec(t, time.Minute, nil, s.bin, args...)
	if r.err != nil {
		t.Fatalf("bucketfs mount %s: %v\nstderr: %s", source, r.err, clip(r.stderr))
	}
	if !isMounted(t, mp) {
		t.Fatalf("bucketfs mount %s exited 0 but %s is not a mount", source, mp)
	}
	t.Logf("mounted %q in %v", source, r.took.Round(time.Millisecond))
	return logFile
}

// unmount runs `bucketfs unmount` and fails the test if the mount stays.
func (s *suite) unmount(t *testing.T, mp string) {
	t.Helper()
	r := s.exec(t, 30*time.Second, nil, s.bin, "unmount", mp)
	if r.err != nil {
		t.Errorf("bucketfs unmount %s: %v\nstderr: %s", mp, r.err, clip(r.stderr))
		return
	}
	if !waitUnmounted(t, mp, 5*time.Second) {
		t.Errorf("bucketfs unmount %s exited 0 but it is still mounted", mp)
	}
}

// cleanupMount undoes a mount however it can, so one broken test does not
// leave mounts for the next.
func (s *suite) cleanupMount(t *testing.T, mp string) {
	t.Helper()
	if !isMounted(t, mp) {
		return
	}
	r := s.exec(t, 30*time.Second, nil, s.bin, "unmount", mp)
	if r.err == nil && waitUnmounted(t, mp, 5*time.Second) {
		return
	}
	t.Logf("bucketfs unmount %s failed (%v: %s); using fusermount3 -u -z", mp, r.err, strings.TrimSpace(r.stderr))
	if out, err := exec.Command("fusermount3", "-u", "-z", mp).CombinedOutput(); err != nil {
		t.Errorf("fusermount3 -u -z %s: %v: %s", mp, err, out)
	}
}

func waitUnmounted(t *testing.T, mp string, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for isMounted(t, mp) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func logTail(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("no bucketfs log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	t.Logf("last lines of %s:\n%s", path, strings.Join(lines, "\n"))
}

// isMounted reports whether path is a mount point in /proc/self/mountinfo.
func isMounted(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return mountinfoHas(data, filepath.Clean(path))
}

func mountinfoHas(data []byte, path string) bool {
	return mountinfoLine(data, path) != ""
}

// mountinfoLine returns the mountinfo line of the mount at path, "" if none.
func mountinfoLine(data []byte, path string) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := ""
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && unescapeMountinfo(f[4]) == path {
			line = sc.Text() // the last one is the one on top
		}
	}
	return line
}

// mountLine returns the mountinfo line of the mount at path.
func mountLine(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return mountinfoLine(data, filepath.Clean(path))
}

// unescapeMountinfo decodes the \ooo escapes the kernel uses for spaces,
// tabs, newlines and backslashes in mount points.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lines splits command output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// exitCode extracts a process's exit status, -1 if it did not exit normally.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// pseudoRandom returns n deterministic bytes for seed: content that a mix of
// two versions cannot fake.
func pseudoRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 0; i < n; i += 8 {
		// xorshift64*
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		v := x * 0x2545F4914F6CDD1D
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Runs without BUCKETFS_E2E: every "is it still mounted" check relies on it.
func TestMountinfoHas(t *testing.T) {
	const info = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
101 22 0:50 / /tmp/a\040b rw,nosuid,nodev,relatime shared:60 - fuse.bucketfs bucketfs rw,user_id=0,group_id=0
102 22 0:51 / /tmp/back\134slash rw - fuse bucketfs rw
`
	tests := []struct {
		path string
		want bool
	}{
		{"/", true},
		{"/tmp/a b", true},
		{`/tmp/back\slash`, true},
		{"/tmp/a", false},
		{`/tmp/a\040b`, false},
		{"/tmp", false},
	}
	for _, tc := range tests {
		if got := mountinfoHas([]byte(info), tc.path); got != tc.want {
			t.Errorf("mountinfoHas(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
