package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/internal/faultproxy"
)

// freeAddr returns a loopback address with a port nobody listens on now.
// The mount must be told a port (with :0 nobody could find it), so the
// test picks one; another process taking it in between is unlikely.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scrape fetches /metrics and returns every sample by its series
// (name{labels}), as Prometheus writes it.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// statusJSON is the part of "bucketfs status --json" the test checks.
type statusJSON struct {
	Source     string `json:"source"`
	MountPoint string `json:"mountpoint"`
	Requests   struct {
		Requests int64 `json:"requests"`
		Retries  int64 `json:"retries"`
	} `json:"requests"`
	Ops []struct {
		Op       string           `json:"op"`
		Requests int64            `json:"requests"`
		Retries  int64            `json:"retries"`
		ByStatus map[string]int64 `json:"by_status"`
	} `json:"ops"`
	BytesRead int64 `json:"bytes_read"`
	Cache     struct {
		BlockHits     int64 `json:"block_hits"`
		BlockMisses   int64 `json:"block_misses"`
		Bytes         int64 `json:"bytes"`
		CapacityBytes int64 `json:"capacity_bytes"`
	} `json:"cache"`
	Credentials struct {
		Source string `json:"source"`
	} `json:"credentials"`
}

// TestMetricsAndStatus mounts with --metrics-addr through a proxy that
// answers the first ranged GET with 503 SlowDown, reads a file, and checks
// that /metrics counts the requests, the retry, the bytes and the cache,
// and that "bucketfs status" (text and --json) shows the same figures.
func TestMetricsAndStatus(t *testing.T) {
	s := need(t)
	bkt := s.bucket("metrics")
	const size = 3 << 20
	sums := s.seedRandom(t, fmt.Sprintf("%s/data.bin:%d", bkt, size))
	var ranged atomic.Int64
	p := s.startProxy(t, faultproxy.Config{
		Rate: 1, Kinds: []faultproxy.Kind{faultproxy.SlowDown}, Methods: []string{http.MethodGet},
		Match: func(r *http.Request) bool { return r.Header.Get("Range") != "" && ranged.Add(1) == 1 },
	})
	addr := freeAddr(t)
	mp := s.mount(t, "s3://"+bkt, "--endpoint-url", p.URL(), "--metrics-addr", addr, "--cache-size", "64MiB")

	r := s.exec(t, time.Minute, nil, "sha256sum", filepath.Join(mp, "data.bin"))
	if r.err != nil {
		t.Fatalf("sha256sum: %v: %s", r.err, r.stderr)
	}
	if got, _, _ := strings.Cut(r.stdout, " "); got != sums["data.bin"] {
		t.Fatalf("sha256 = %s, want %s", got, sums["data.bin"])
	}
	if st := p.Stats(); st.Total() != 1 {
		t.Fatalf("the proxy injected %d faults, want exactly 1 (%v)", st.Total(), st)
	}

	before := scrape(t, addr)
	inf := math.Inf(1)
	for _, c := range []struct {
		series string
		lo, hi float64
	}{
		{`bucketfs_store_requests_total{op="get",status="ok"}`, 1, inf},
		{`bucketfs_store_requests_total{op="list",status="ok"}`, 1, inf}, // the preflight at least
		{`bucketfs_store_retries_total{op="get"}`, 1, 1},
		{`bucketfs_store_bytes_read_total`, size, inf},
		{`bucketfs_cache_block_misses_total`, 1, inf},
		{`bucketfs_cache_block_hits_total`, 0, inf},
		{`bucketfs_cache_bytes`, 1, 64 << 20},
		{`bucketfs_cache_capacity_bytes`, 64 << 20, 64 << 20},
		{`bucketfs_store_request_duration_seconds_count{op="get"}`, 1, inf},
		{fmt.Sprintf(`bucketfs_mount_info{mountpoint=%q,source="s3://%s/"}`, mp, bkt), 1, 1},
		{`bucketfs_credential_info{source="environment (AWS_ACCESS_KEY_ID)"}`, 1, 1},
		{`bucketfs_credential_expiry_timestamp_seconds`, 0, 0}, // keys from the environment do not expire
		{`go_goroutines`, 1, inf},
		// The watchdog of the file operations (the scrape itself is
		// none: it does not go through the mount).
		{`bucketfs_fuse_op_duration_seconds_count{op="read"}`, 1, inf},
		{`bucketfs_fuse_op_duration_seconds_count{op="lookup"}`, 1, inf},
		{`bucketfs_fuse_ops_in_flight`, 0, inf},
		{`bucketfs_fuse_ops_stuck`, 0, 0},
		{`bucketfs_fuse_ops_stuck_total`, 0, 0},
	} {
		v, ok := before[c.series]
		if !ok {
			t.Errorf("/metrics has no %s", c.series)
			continue
		}
		if v < c.lo || v > c.hi {
			t.Errorf("%s = %v, want in [%v, %v]", c.series, v, c.lo, c.hi)
		}
	}
	if resp, err := http.Get("http://" + addr + "/debug/pprof/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// bucketfs status reads the control file .bucketfs/status.json: no
	// request to S3, so its figures are those of the scrapes around it.
	out := s.must(t, 30*time.Second, s.bin, "status", "--json", mp)
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	after := scrape(t, addr)
	between := func(name string, got int64, series string) {
		t.Helper()
		if lo, hi := int64(before[series]), int64(after[series]); got < lo || got > hi {
			t.Errorf("status %s = %d, /metrics said %d before and %d after", name, got, lo, hi)
		}
	}
	between("bytes_read", st.BytesRead, "bucketfs_store_bytes_read_total")
	between("cache.block_misses", st.Cache.BlockMisses, "bucketfs_cache_block_misses_total")
	between("cache.block_hits", st.Cache.BlockHits, "bucketfs_cache_block_hits_total")
	var get int64 = -1
	for _, o := range st.Ops {
		if o.Op == "get" {
			get = o.ByStatus["ok"]
			if o.Retries != 1 {
				t.Errorf("status: get retries %d, want 1", o.Retries)
			}
		}
	}
	between("get ok", get, `bucketfs_store_requests_total{op="get",status="ok"}`)
	if st.MountPoint != mp || st.Source != "s3://"+bkt+"/" || st.Cache.CapacityBytes != 64<<20 ||
		st.Credentials.Source != "environment (AWS_ACCESS_KEY_ID)" {
		t.Errorf("status --json: %+v", st)
	}

	text := s.must(t, 30*time.Second, s.bin, "status", mp)
	t.Logf("bucketfs status %s:\n%s", mp, text)
	for _, want := range []string{
		"mount        s3://" + bkt + "/ on " + mp + "\n",
		"\n  get ",
		"\n  all ",
		"credentials  environment (AWS_ACCESS_KEY_ID); do not expire",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	// The control files hold the same, for cat and any program; the
	// JSON one is what status --json printed (the figures may have moved
	// on since, the fields not).
	catText := s.must(t, 30*time.Second, "cat", filepath.Join(mp, ".bucketfs", "status"))
	for _, want := range []string{"mount        s3://" + bkt + "/ on " + mp + "\n", "\n  all "} {
		if !strings.Contains(catText, want) {
			t.Errorf("cat .bucketfs/status lacks %q:\n%s", want, catText)
		}
	}
	var catJSON statusJSON
	if err := json.Unmarshal([]byte(s.must(t, 30*time.Second, "cat", filepath.Join(mp, ".bucketfs", "status.json"))), &catJSON); err != nil ||
		catJSON.MountPoint != mp || catJSON.Source != st.Source {
		t.Errorf("cat .bucketfs/status.json: %+v, %v", catJSON, err)
	}
	if strings.Contains(out+text+catText, s.secret) {
		t.Errorf("status shows the secret key")
	}

	// Walking the mount never meets the control directory.
	found := s.must(t, 30*time.Second, "find", mp)
	if !strings.Contains(found, "/data.bin\n") {
		t.Errorf("find %s:\n%s", mp, found)
	}
	for _, line := range lines(found + s.must(t, 30*time.Second, "ls", "-a", mp)) {
		if strings.Contains(strings.TrimPrefix(line, mp), ".bucketfs") {
			t.Errorf("find or ls -a shows %q", line)
		}
	}
}

// TestMetricsPortBusy: a --metrics-addr someone else listens on fails the
// mount with one line naming the address and the fix, and leaves nothing
// mounted.
func TestMetricsPortBusy(t *testing.T) {
	s := need(t)
	bkt := s.bucket("metricsbusy")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"f.txt": []byte("f\n")}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()

	mp := s.mountDir(t)
	logFile := filepath.Join(t.TempDir(), "bucketfs.log")
	args := append([]string{"mount"}, s.mountOpts(logFile)...)
	args = append(args, "--metrics-addr", addr, "s3://"+bkt, mp)
	t.Cleanup(func() { s.cleanupMount(t, mp) })
	r := s.exec(t, time.Minute, nil, s.bin, args...)
	msg := strings.TrimRight(r.stderr, "\n")
	t.Logf("exit %d after %v: %s", exitCode(r.err), r.took.Round(time.Millisecond), msg)
	if exitCode(r.err) <= 0 {
		t.Fatalf("bucketfs mount with a busy metrics port: %v, want a non-zero exit", r.err)
	}
	want := "bucketfs mount: cannot serve metrics on " + addr + ": the address is already in use"
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, want) || !strings.Contains(msg, "--metrics-addr") {
		t.Errorf("stderr %q: want one line starting %q and naming --metrics-addr", r.stderr, want)
	}
	if isMounted(t, mp) {
		t.Errorf("%s is mounted after the mount failed", mp)
	}
	if entries, _ := os.ReadDir(mp); len(entries) != 0 {
		t.Errorf("the mount point is not left empty: %v", entries)
	}
}
