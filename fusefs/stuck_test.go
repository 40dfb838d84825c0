package fusefs

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/internal/watchdog"
	"github.com/bucketfs/bucketfs/metrics"
	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// The "stuck" scenario: a store whose GETs of one key never return, not
// even when their context ends (a hung connection the SDK does not see),
// under a mount with the watchdog, status and metrics of a real one.
const stuckKey = "stuck.bin"

func init() {
	scenarios["stuck"] = scenario{
		seed: func(ctx context.Context, mem *memstore.Store) error {
			if err := mem.CreateBucket(ctx, "bkt"); err != nil {
				return err
			}
			for _, k := range []string{stuckKey, "ok.bin"} {
				if _, err := mem.Put(ctx, "bkt", k, strings.NewReader(strings.Repeat("x", 1<<20)), 1<<20); err != nil {
					return err
				}
			}
			return nil
		},
		cache: cache.Config{RequestTimeout: time.Second, StallTimeout: 200 * time.Millisecond},
		wrap: func(mem *memstore.Store) store.ObjectStore {
			fs := faultstore.New(mem)
			fs.SetHook(func(ctx context.Context, op, bucket, key string) error {
				if op == faultstore.OpReadAt && key == stuckKey {
					select {} // for ever, whatever ctx says
				}
				return nil
			})
			return fs
		},
		watch: watchForTest,
	}
}

// watchForTest wires the watchdog as the mount command does, with a stuck
// threshold of a second, and serves the metrics on a port it logs.
func watchForTest(cfg *Config, log *slog.Logger) error {
	m := metrics.New(metrics.Options{Version: "test", Source: "stuck", MountPoint: "test"})
	t := watchdog.New(watchdog.Config{StuckAfter: time.Second, Logger: log, Observer: m})
	m.WatchInFlight(t)
	go t.Run(context.Background(), 100*time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go m.Serve(context.Background(), ln)
	log.Warn("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	cfg.Tracker, cfg.Status = t, m.StatusFiles(t)
	return nil
}

// A read that the store never answers: the watchdog logs it with its
// stack, the status lists it, the metric counts it; the blocked reader
// dies at once on SIGKILL or SIGINT; and "bucketfs unmount --force" clears
// the mount while a reader is still blocked on it.
func TestStuckRead(t *testing.T) {
	c := mountScenario(t, "stuck")
	stuck := filepath.Join(c.mp, "bkt", stuckKey)
	if data, err := os.ReadFile(filepath.Join(c.mp, "bkt", "ok.bin")); err != nil || len(data) != 1<<20 {
		t.Fatalf("read of a healthy file: %d bytes, %v", len(data), err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("cat", stuck)
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cat := start()

	// The log line, with the stack of the request.
	var rec map[string]any
	waitFor(t, 10*time.Second, "the stuck-operation log line", func() bool {
		for _, r := range c.logLines(t) {
			if strings.HasPrefix(r["msg"].(string), "operation stuck") && r["path"] == "bkt/"+stuckKey {
				rec = r
				return true
			}
		}
		return false
	})
	// The stack shows the request's handler and where it waits: for
	// whole blocks (cache.blockCache.get; the GET is in a fetch this read
	// or another one started), or in an exact GET of its own, when the
	// kernel's first READ of the file arrives at an offset past its start
	// (cache.Reader.exact).
	if stack := rec["stack"].(string); rec["op"] != "read" || !strings.Contains(stack, "fusefs.(*handle).Read") ||
		!(strings.Contains(stack, "cache.(*blockCache).get") || strings.Contains(stack, "cache.(*Reader).exact")) {
		t.Errorf("stuck line: op %v, stack\n%v", rec["op"], rec["stack"])
	}
	// The status line, once the read is 5s old.
	var status []byte
	line := regexp.MustCompile(`(?m)^  read +bkt/` + stuckKey + ` for \d+s \(pid \d+, uid \d+\)$`)
	waitFor(t, 10*time.Second, "status line", func() bool {
		var err error
		status, err = os.ReadFile(filepath.Join(c.mp, namespace.ControlDir, "status"))
		return err == nil && line.Match(status)
	})
	// The metrics.
	var url string
	for _, r := range c.logLines(t) {
		if r["msg"] == "metrics" {
			url = r["url"].(string)
		}
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{`(?m)^bucketfs_fuse_ops_stuck [1-9]`, `(?m)^bucketfs_fuse_ops_stuck_total [1-9]`, `(?m)^bucketfs_fuse_ops_in_flight [1-9]`,
		`(?m)^bucketfs_fuse_op_duration_seconds_count\{op="lookup"\} [1-9]`} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("metrics lack %s", re)
		}
	}

	// The list of operations in flight, which answers without the mount.
	resp, err = http.Get(strings.TrimSuffix(url, "/metrics") + "/debug/ops")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^ +\d+\.\ds read +bkt/` + stuckKey + ` pid=\d+ uid=\d+$`).Match(body) {
		t.Errorf("/debug/ops lists no stuck read:\n%s", body)
	}

	// Killable: SIGKILL and SIGINT free a blocked reader within a second.
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		if sig != syscall.SIGKILL {
			cat = start()
			time.Sleep(300 * time.Millisecond)
		}
		sent := time.Now()
		cat.Process.Signal(sig)
		if err := waitExit(cat, 5*time.Second); err != nil {
			t.Fatalf("%v: %v", sig, err)
		}
		if took := time.Since(sent); took > time.Second {
			t.Errorf("%v freed the reader after %v, want under a second", sig, took)
		}
	}

	// unmount --force, with a reader still blocked.
	cat = start()
	time.Sleep(300 * time.Millisecond)
	out, err := exec.Command(bucketfsBinary(t), "unmount", "--force", c.mp).CombinedOutput()
	if err != nil {
		t.Fatalf("unmount --force: %v: %s", err, out)
	}
	if err := waitExit(cat, 5*time.Second); err != nil {
		t.Fatalf("reader after unmount --force: %v", err)
	}
	if !cat.ProcessState.Exited() || cat.ProcessState.ExitCode() == 0 {
		t.Errorf("reader after unmount --force: %v, want a failure", cat.ProcessState)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), " "+c.mp+" ") {
		t.Errorf("%s still mounted after unmount --force", c.mp)
	}
	if err := c.wait(10 * time.Second); err != nil {
		t.Errorf("daemon after unmount --force: %v", err)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("no %s within %v", what, limit)
}

// waitExit waits for cmd to end, at most limit.
func waitExit(cmd *exec.Cmd, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(limit):
		return os.ErrDeadlineExceeded
	}
}

// bucketfsBinary is $BUCKETFS_BIN, or the command built for this test.
func bucketfsBinary(t *testing.T) string {
	if b := os.Getenv("BUCKETFS_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "bucketfs")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/bucketfs").CombinedOutput(); err != nil {
		t.Fatalf("build bucketfs: %v: %s", err, out)
	}
	return bin
}
