// Command stress runs scripts/stress's workload: two bucketfs mounts of one
// bucket (as two users' mounts on one host), each behind the fault proxy,
// with a small cache and a one-second metadata TTL, and at least 16
// concurrent workers reading, walking and writing through them while
// objects are overwritten through the S3 API. A watchdog fails the run when
// any worker makes no progress for --stall, and first collects what
// explains it (stall.go): each daemon's goroutine dump and operations in
// flight, the kernel stacks and wait channels of blocked processes and the
// FUSE connections' waiting counts.
//
//	stress --bin bin/bucketfs --proxy URL --s3 URL --work DIR --duration 10m
//
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store/s3"
)

const bucket = "stress"

type options struct {
	bin, proxy, s3, work string
	duration, stall      time.Duration
	mountFlags           []string
}

func main() {
	var o options
	var flags string
	flag.StringVar(&o.bin, "bin", "", "the bucketfs `binary`")
	flag.StringVar(&o.proxy, "proxy", "", "fault proxy `URL` the mounts go through")
	flag.StringVar(&o.s3, "s3", "", "S3 server `URL` for seeding and overwrites (not through the proxy)")
	flag.StringVar(&o.work, "work", "", "work `directory` (mount points, logs, reports)")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the workload runs")
	flag.DurationVar(&o.stall, "stall", 30*time.Second, "fail when a worker makes no progress for this long")
	flag.StringVar(&flags, "mount-flags", "", "extra mount flags, space-separated (e.g. --allow-delete)")
	flag.Parse()
	o.mountFlags = strings.Fields(flags)
	if o.bin == "" || o.proxy == "" || o.s3 == "" || o.work == "" {
		fmt.Fprintln(os.Stderr, "stress: --bin, --proxy, --s3 and --work are required")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "stress: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("stress: PASS")
}

// mount is one bucketfs mount of the run.
type mount struct {
	name, dir, log string
	metrics        string // host:port of --metrics-addr
	pid            int
}

func run(o options) error {
	ctx := context.Background()
	st, err := newStore(ctx, o.s3)
	if err != nil {
		return err
	}
	logf("seeding s3://%s", bucket)
	if err := seed(ctx, st); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	var mounts []*mount
	defer func() {
		for _, m := range mounts {
			// A no-op when the run already unmounted it.
			_ = exec.Command(o.bin, "unmount", "--force", m.dir).Run()
		}
	}()
	for _, name := range []string{"a", "b"} {
		m, err := startMount(o, name)
		if err != nil {
			return err
		}
		mounts = append(mounts, m)
		logf("mounted %s (daemon %d, metrics http://%s)", m.dir, m.pid, m.metrics)
	}

	r := &runner{o: o, st: st, mounts: mounts, stop: make(chan struct{})}
	r.start(ctx)
	logf("%d workers for %v; a worker without progress for %v fails the run", len(r.workers), o.duration, o.stall)
	end := time.After(o.duration)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastReport := time.Now()
	for running := true; running; {
		select {
		case <-end:
			running = false
		case <-tick.C:
			if w := r.stalled(o.stall); w != nil {
				report := diagnose(o, mounts, r, w)
				return fmt.Errorf("worker %s made no progress for %v (doing: %s); diagnostics in %s", w.name, o.stall, w.doing(), report)
			}
			if time.Since(lastReport) >= time.Minute {
				lastReport = time.Now()
				logf("%s", r.summary())
			}
		}
	}
	close(r.stop)
	// Workers finish the unit they are in; one that cannot is stuck too.
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	deadline := time.After(o.stall + 30*time.Second)
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-deadline:
			w := r.stalled(0)
			report := diagnose(o, mounts, r, w)
			return fmt.Errorf("worker %s did not finish after the end (doing: %s); diagnostics in %s", w.name, w.doing(), report)
		case <-tick.C:
			if w := r.stalled(o.stall); w != nil {
				report := diagnose(o, mounts, r, w)
				return fmt.Errorf("worker %s made no progress for %v while finishing (doing: %s); diagnostics in %s", w.name, o.stall, w.doing(), report)
			}
		}
	}
	logf("%s", r.summary())
	for _, c := range r.closers {
		c.Close()
	}
	verdict := r.verdict()
	for _, m := range mounts {
		if err := unmount(o, m); err != nil {
			return errors.Join(verdict, err)
		}
	}
	mounts = nil
	return verdict
}

func logf(format string, a ...any) {
	fmt.Printf("%s stress: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// newStore is an S3 client with environment credentials only.
func newStore(ctx context.Context, endpoint string) (*s3.Store, error) {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return nil, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, "")),
		config.WithRegion("us-east-1"))
	if err != nil {
		return nil, err
	}
	return s3.New(cfg, s3.Options{Endpoint: endpoint, PathStyle: true}), nil
}

// startMount mounts the bucket at WORK/NAME through the proxy and finds
// its daemon.
func startMount(o options, name string) (*mount, error) {
	m := &mount{name: name, dir: filepath.Join(o.work, "mnt-"+name), log: filepath.Join(o.work, "bucketfs-"+name+".log")}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m.metrics = ln.Addr().String()
	ln.Close()
	args := append([]string{"mount", "--endpoint-url", o.proxy, "--path-style", "--region", "us-east-1",
		"--cache-size", "64MiB", "--metadata-ttl", "1s", "--stall-timeout", "1s", "--request-timeout", "10s",
		"--metrics-addr", m.metrics, "--log-file", m.log, "--cache-dir", filepath.Join(o.work, "staging-"+name)},
		o.mountFlags...)
	if name == "b" {
		// One mount reads through a small disk cache, evicting all along:
		// its blocks must never be older than the objects they are of.
		args = append(args, "--disk-cache", filepath.Join(o.work, "disk-"+name), "--disk-cache-size", "64MiB")
	}
	args = append(args, "s3://"+bucket, m.dir)
	if out, err := exec.Command(o.bin, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount %s: %v: %s", m.dir, err, out)
	}
	m.pid = daemonPID(m.dir)
	if m.pid == 0 {
		return nil, fmt.Errorf("no daemon found for %s", m.dir)
	}
	return m, nil
}

// daemonPID finds the process serving mp: a bucketfs mount in the
// foreground whose last argument is mp.
func daemonPID(mp string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 2 && args[1] == "mount" && args[len(args)-1] == mp && strings.Contains(string(b), "--foreground") {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
			return pid
		}
	}
	return 0
}

// unmount unmounts m and checks that its daemon exits.
func unmount(o options, m *mount) error {
	if out, err := exec.Command(o.bin, "unmount", m.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("unmount %s: %v: %s", m.dir, err, out)
	}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", m.pid)); err != nil {
			return nil
		}
	}
	return fmt.Errorf("the daemon of %s (%d) still runs 30s after unmount", m.dir, m.pid)
}

// runner holds the workers and what they saw.
type runner struct {
	o       options
	st      *s3.Store
	mounts  []*mount
	stop    chan struct{}
	wg      sync.WaitGroup
	workers []*worker
	closers []io.Closer // files held open across units, closed at the end

	mu     sync.Mutex
	wrong  []string // wrong data: always a failure
	errs   []string // I/O errors the faults may explain
	errN   atomic.Int64
	okRace atomic.Int64 // ESTALE/ENOENT from changes made on purpose
}

func (r *runner) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// worker is one loop of the workload with its progress.
type worker struct {
	name  string
	units atomic.Int64
	last  atomic.Int64 // unix nanoseconds of the last progress
	now   atomic.Value // string: what it does now
	pids  sync.Map     // pid -> command of the processes it runs now
}

func (w *worker) progress() {
	w.units.Add(1)
	w.last.Store(time.Now().UnixNano())
}

func (w *worker) doing() string {
	s, _ := w.now.Load().(string)
	return s
}

func (w *worker) set(what string) { w.now.Store(what) }

// stalled returns the worker that has made no progress for longest, if
// that is at least d.
func (r *runner) stalled(d time.Duration) *worker {
	var worst *worker
	for _, w := range r.workers {
		if worst == nil || w.last.Load() < worst.last.Load() {
			worst = w
		}
	}
	if worst != nil && time.Since(time.Unix(0, worst.last.Load())) >= d {
		return worst
	}
	return nil
}

func (r *runner) summary() string {
	var parts []string
	for _, w := range r.workers {
		parts = append(parts, fmt.Sprintf("%s=%d", w.name, w.units.Load()))
	}
	return fmt.Sprintf("progress: %s; io errors %d, expected races %d, wrong data %d",
		strings.Join(parts, " "), r.errN.Load(), r.okRace.Load(), len(r.wrong))
}

// verdict fails the run on wrong data, and on I/O errors beyond what the
// injected faults explain (more than one unit in a hundred).
func (r *runner) verdict() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var units int64
	for _, w := range r.workers {
		units += w.units.Load()
		if w.units.Load() == 0 {
			return fmt.Errorf("worker %s made no progress at all", w.name)
		}
	}
	for i, e := range r.errs {
		if i == 10 {
			break
		}
		logf("io error: %s", e)
	}
	if len(r.wrong) > 0 {
		return fmt.Errorf("%d reads returned wrong data; first: %s", len(r.wrong), r.wrong[0])
	}
	if n := r.errN.Load(); n*100 > units {
		return fmt.Errorf("%d I/O errors in %d units of work (over 1%%)", n, units)
	}
	return nil
}

func (r *runner) wrongData(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	logf("WRONG: %s", msg)
	r.mu.Lock()
	r.wrong = append(r.wrong, msg)
	r.mu.Unlock()
}

func (r *runner) ioError(w *worker, err error) {
	r.errN.Add(1)
	r.mu.Lock()
	if len(r.errs) < 100 {
		r.errs = append(r.errs, w.name+": "+err.Error())
	}
	r.mu.Unlock()
}
