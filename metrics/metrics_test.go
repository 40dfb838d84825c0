package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bucketfs/bucketfs/internal/watchdog"
	"github.com/bucketfs/bucketfs/store/metered"
)

var (
	_ metered.Observer  = (*Metrics)(nil)
	_ watchdog.Observer = (*Metrics)(nil)
)

var (
	start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now   = start.Add(90 * time.Minute)
)

func newTest() *Metrics {
	return New(Options{Version: "v1.2.3", Source: "s3://bkt/data/", MountPoint: "/mnt/data", Start: start, Now: func() time.Time { return now }})
}

// workload records a fixed set of events.
func workload(m *Metrics) {
	m.ObserveRequest("get", "ok", 40*time.Millisecond, 0)
	m.ObserveRequest("get", "ok", 60*time.Millisecond, 1)
	m.ObserveRequest("get", "throttled", 2*time.Second, 4)
	m.ObserveRequest("head", "not_found", 2*time.Millisecond, 0)
	m.ObserveRequest("head", "ok", 4*time.Millisecond, 0)
	m.AddBytesRead(3 << 20)
	m.AddBytesWritten(1024)
	m.SetCredentials("instance role my-role", start.Add(time.Hour))
	m.CredentialRefreshed(false, start.Add(time.Hour))
	m.CredentialRefreshed(true, start.Add(7*time.Hour))
	m.SetCacheStats(func() CacheStats {
		return CacheStats{BlockHits: 30, BlockMisses: 10, CachedBytes: 40 << 20, CapacityBytes: 512 << 20,
			MetaBytes: 3 << 20, MetaCapacity: 128 << 20, MetaEntries: 1200, MetaEvictions: 7}
	})
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestExposition(t *testing.T) {
	m := newTest()
	before := scrape(t, m.Handler())
	workload(m)
	after := scrape(t, m.Handler())
	for _, tc := range []struct {
		text  string
		lines []string
	}{
		{before, []string{
			// Before the cache exists its figures read 0.
			"bucketfs_cache_block_hits_total 0",
			"bucketfs_cache_capacity_bytes 0",
			`bucketfs_credential_refreshes_total{result="ok"} 0`,
			`bucketfs_credential_refreshes_total{result="error"} 0`,
			"bucketfs_credential_expiry_timestamp_seconds 0",
			`bucketfs_build_info{version="v1.2.3"} 1`,
			`bucketfs_mount_info{mountpoint="/mnt/data",source="s3://bkt/data/"} 1`,
			"bucketfs_mount_start_timestamp_seconds 1.7723664e+09",
			"go_goroutines ",
			"process_start_time_seconds ",
		}},
		{after, []string{
			`bucketfs_store_requests_total{op="get",status="ok"} 2`,
			`bucketfs_store_requests_total{op="get",status="throttled"} 1`,
			`bucketfs_store_requests_total{op="head",status="not_found"} 1`,
			`bucketfs_store_retries_total{op="get"} 5`,
			`bucketfs_store_retries_total{op="head"} 0`,
			`bucketfs_store_request_duration_seconds_bucket{op="get",le="0.05"} 1`,
			`bucketfs_store_request_duration_seconds_bucket{op="get",le="0.1"} 2`,
			`bucketfs_store_request_duration_seconds_bucket{op="get",le="30"} 3`,
			`bucketfs_store_request_duration_seconds_count{op="head"} 2`,
			"bucketfs_store_bytes_read_total 3.145728e+06",
			"bucketfs_store_bytes_written_total 1024",
			"bucketfs_cache_block_hits_total 30",
			"bucketfs_cache_block_misses_total 10",
			"bucketfs_cache_bytes 4.194304e+07",
			"bucketfs_cache_capacity_bytes 5.36870912e+08",
			"bucketfs_cache_metadata_bytes 3.145728e+06",
			"bucketfs_cache_metadata_capacity_bytes 1.34217728e+08",
			"bucketfs_cache_metadata_entries 1200",
			"bucketfs_cache_metadata_evictions_total 7",
			`bucketfs_credential_refreshes_total{result="ok"} 1`,
			`bucketfs_credential_refreshes_total{result="error"} 1`,
			`bucketfs_credential_info{source="instance role my-role"} 1`,
			"bucketfs_credential_expiry_timestamp_seconds 1.7723916e+09",
		}},
	} {
		for _, l := range tc.lines {
			if !strings.Contains(tc.text, "\n"+l) {
				t.Errorf("/metrics lacks %q", l)
			}
		}
	}
	// Credentials that do not expire read 0 again.
	m.CredentialRefreshed(true, time.Time{})
	if s := scrape(t, m.Handler()); !strings.Contains(s, "\nbucketfs_credential_expiry_timestamp_seconds 0\n") {
		t.Errorf("expiry of long-term credentials is not 0")
	}
}

// TestSnapshot: the snapshot says what /metrics says.
func TestSnapshot(t *testing.T) {
	m := newTest()
	workload(m)
	s := m.Snapshot()
	exp := start.Add(7 * time.Hour)
	want := Snapshot{
		Source: "s3://bkt/data/", MountPoint: "/mnt/data", Version: "v1.2.3",
		Started: start, UptimeSeconds: 90 * 60,
		Requests: OpStats{Requests: 5, Errors: 2, Retries: 5,
			ByStatus: map[string]int64{"ok": 3, "throttled": 1, "not_found": 1}},
		Ops: []OpStats{
			{Op: "get", Requests: 3, Errors: 1, Retries: 5, ByStatus: map[string]int64{"ok": 2, "throttled": 1}},
			{Op: "head", Requests: 2, Errors: 1, ByStatus: map[string]int64{"ok": 1, "not_found": 1}},
		},
		BytesRead: 3 << 20, BytesWritten: 1024,
		Cache: CacheSnapshot{BlockHits: 30, BlockMisses: 10, HitRatio: 0.75, Bytes: 40 << 20, CapacityBytes: 512 << 20,
			MetadataBytes: 3 << 20, MetadataCapacityBytes: 128 << 20, MetadataEntries: 1200, MetadataEvictions: 7},
		Credentials: CredentialSnapshot{Source: "instance role my-role", RefreshesOK: 1, RefreshErrors: 1, Expires: &exp},
	}
	// Means are floating point sums; check them apart.
	for i, wantMean := range []float64{2.1 / 3, 0.003} {
		if d := s.Ops[i].MeanSeconds - wantMean; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s mean %v, want %v", s.Ops[i].Op, s.Ops[i].MeanSeconds, wantMean)
		}
	}
	gotJSON, wantJSON := zeroMeans(t, s), zeroMeans(t, want)
	if gotJSON != wantJSON {
		t.Errorf("snapshot\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	// Round trip: what "bucketfs status --json" prints decodes back.
	b, _ := json.Marshal(s)
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || zeroMeans(t, back) != gotJSON {
		t.Errorf("JSON round trip: %v\n%s", err, b)
	}
}

func zeroMeans(t *testing.T, s Snapshot) string {
	t.Helper()
	s.Requests.MeanSeconds = 0
	ops := append([]OpStats(nil), s.Ops...)
	for i := range ops {
		ops[i].MeanSeconds = 0
	}
	s.Ops = ops
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteText(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(*Metrics)
		slow []watchdog.Info // what the watchdog lists
		want string
	}{
		{"idle", func(*Metrics) {}, nil, `mount        s3://bkt/data/ on /mnt/data
version      v1.2.3, up 1h30m0s
read         0 B from S3
written      0 B to S3
cache        0 hits, 0 misses (0.0% hits); 0 B of 0 B in use
metadata     0 entries, 0 B of 0 B in use; 0 evicted
credentials  ; do not expire; refreshes: 0 ok, 0 failed
in flight    0 file operations, 0 stuck, 0 over 5s

requests      total   errors  retries      mean
  all             0        0        0         -
`},
		{"busy", workload, nil, `mount        s3://bkt/data/ on /mnt/data
version      v1.2.3, up 1h30m0s
read         3.0 MiB from S3
written      1.0 KiB to S3
cache        30 hits, 10 misses (75.0% hits); 40.0 MiB of 512.0 MiB in use
metadata     1200 entries, 3.0 MiB of 128.0 MiB in use; 7 evicted
credentials  instance role my-role; expire 2026-03-01T19:00:00Z; refreshes: 1 ok, 1 failed
in flight    0 file operations, 0 stuck, 0 over 5s

requests      total   errors  retries      mean
  get             3        1        5     700ms
  head            2        1        0       3ms
  all             5        2        5   421.2ms
errors by status: not_found 1, throttled 1
`},
		{"stuck", func(m *Metrics) {
			m.SetInFlightStats(func() InFlightStats { return InFlightStats{InFlight: 7, Stuck: 1, StuckTotal: 3} })
		}, []watchdog.Info{
			{Op: "read", Path: "bkt/data/big.bin", UID: 1000, PID: 4242, Seconds: 75.2},
			{Op: "readdir", Path: "bkt/data/", UID: 1001, PID: 17, Seconds: 6},
		}, `mount        s3://bkt/data/ on /mnt/data
version      v1.2.3, up 1h30m0s
read         0 B from S3
written      0 B to S3
cache        0 hits, 0 misses (0.0% hits); 0 B of 0 B in use
metadata     0 entries, 0 B of 0 B in use; 0 evicted
credentials  ; do not expire; refreshes: 0 ok, 0 failed
in flight    7 file operations, 1 stuck, 2 over 5s
  read        bkt/data/big.bin for 1m15s (pid 4242, uid 1000)
  readdir     bkt/data/ for 6s (pid 17, uid 1001)

requests      total   errors  retries      mean
  all             0        0        0         -
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTest()
			tc.do(m)
			var b bytes.Buffer
			s := m.Snapshot()
			s.Slow = tc.slow
			if err := s.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("text:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestServe: /metrics and the profiler answer on the listener; the server
// stops when the context ends.
func TestServe(t *testing.T) {
	m := newTest()
	workload(m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		path, want string
	}{
		{"/metrics", `bucketfs_store_requests_total{op="get",status="ok"} 2`},
		{"/metrics", "bucketfs_fuse_ops_stuck 0"},
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
		{"/", `href="/metrics"`},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d, body lacks %q", tc.path, resp.StatusCode, tc.want)
		}
	}
	if resp, err := http.Get(base + "/nothing"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /nothing: %d, want 404", resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after the context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Errorf("the server still answers after Serve returned")
	}
}

// TestPrivateRegistry: two instances (two mounts in one test binary) do
// not collide, and nothing lands in the global registry.
func TestPrivateRegistry(t *testing.T) {
	a, b := newTest(), newTest()
	a.ObserveRequest("get", "ok", time.Millisecond, 0)
	if got := b.Snapshot().Requests.Requests; got != 0 {
		t.Errorf("second instance sees %d requests of the first", got)
	}
	if s := scrape(t, promhttp.Handler()); strings.Contains(s, "bucketfs_") {
		t.Errorf("the global registry has bucketfs metrics")
	}
}
