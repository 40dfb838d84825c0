// Package metrics counts what a mount does (requests to the object store by
// operation and outcome, bytes, cache hits, credential refreshes) in a
// private Prometheus registry, serves it over HTTP (--metrics-addr) and
// condenses it into a Snapshot for "bucketfs status".
//
// The Snapshot is built by gathering the same registry /metrics serves, so
// the two can never disagree.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bucketfs/bucketfs/internal/watchdog"
)

// Metric names, for the tests and for Snapshot.
const (
	namespace = "bucketfs"

	nameRequests        = "bucketfs_store_requests_total"
	nameDuration        = "bucketfs_store_request_duration_seconds"
	nameRetries         = "bucketfs_store_retries_total"
	nameBytesRead       = "bucketfs_store_bytes_read_total"
	nameBytesWritten    = "bucketfs_store_bytes_written_total"
	nameCacheHits       = "bucketfs_cache_block_hits_total"
	nameCacheMisses     = "bucketfs_cache_block_misses_total"
	nameCacheBytes      = "bucketfs_cache_bytes"
	nameCacheCapacity   = "bucketfs_cache_capacity_bytes"
	nameMetaBytes       = "bucketfs_cache_metadata_bytes"
	nameMetaCapacity    = "bucketfs_cache_metadata_capacity_bytes"
	nameMetaEntries     = "bucketfs_cache_metadata_entries"
	nameMetaEvictions   = "bucketfs_cache_metadata_evictions_total"
	nameRefreshes       = "bucketfs_credential_refreshes_total"
	nameExpiry          = "bucketfs_credential_expiry_timestamp_seconds"
	nameCredentialInfo  = "bucketfs_credential_info"
	nameBuildInfo       = "bucketfs_build_info"
	nameMountInfo       = "bucketfs_mount_info"
	nameStartTimestamp  = "bucketfs_mount_start_timestamp_seconds"
	nameOpsInFlight     = "bucketfs_fuse_ops_in_flight"
	nameOpDuration      = "bucketfs_fuse_op_duration_seconds"
	nameOpsStuck        = "bucketfs_fuse_ops_stuck"
	nameOpsStuckTotal   = "bucketfs_fuse_ops_stuck_total"
	statusOK            = "ok"
	refreshOK           = "ok"
	refreshError        = "error"
	readHeaderTimeout   = 10 * time.Second
	shutdownGracePeriod = 5 * time.Second
)

// durationBuckets span a cached HEAD on a LAN (1ms) to a request that
// retried through a long outage (30s).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Options describe the mount; they become the labels of the info gauges.
type Options struct {
	Version    string
	Source     string // what is mounted: "bucketfs" (every bucket) or s3://BUCKET/PREFIX
	MountPoint string
	// Start is when the mount started; zero means now.
	Start time.Time
	// Now is the clock for uptime; nil means time.Now (tests fix it).
	Now func() time.Time
}

// CacheStats are the figures of the data cache read at every scrape. The
// cache owns them; metrics only reads them through the hook given to
// SetCacheStats.
type CacheStats struct {
	BlockHits, BlockMisses     int64
	CachedBytes, CapacityBytes int64
	// The metadata cache (listings and per-name records): bytes counted,
	// its bound (--metadata-cache-size), entries, and evictions so far.
	MetaBytes, MetaCapacity, MetaEntries, MetaEvictions int64
}

// InFlightStats are the figures of the file operations in flight, read at
// every scrape through the hook given to SetInFlightStats.
type InFlightStats struct {
	InFlight, Stuck int   // operations in flight now; those of them stuck
	StuckTotal      int64 // operations ever reported stuck
}

// Metrics owns the registry and the collectors of one mount. Its methods
// are safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	opts     Options
	cache    atomic.Pointer[func() CacheStats]
	inflight atomic.Pointer[func() InFlightStats]
	disk     atomic.Pointer[func() (DiskStats, bool)]
	tracker  atomic.Pointer[watchdog.Tracker] // for /debug/ops
	opTime   *prometheus.HistogramVec

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	bytesRead    prometheus.Counter
	bytesWritten prometheus.Counter
	refreshes    *prometheus.CounterVec
	expiry       prometheus.Gauge
	credInfo     *prometheus.GaugeVec
}

// New registers every collector in a fresh private registry (never the
// global one, so tests and a second instance cannot collide), with the Go
// runtime and process collectors.
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Start.IsZero() {
		o.Start = o.Now()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), opts: o}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "requests_total",
		Help: "Requests to the object store by operation and outcome (ok, not_found, access_denied, auth, changed, throttled, wrong_region, exists, unsupported, canceled, timeout, error). A request retried by the SDK counts once.",
	}, []string{"op", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "store", Name: "request_duration_seconds",
		Help:    "Time a request to the object store took, retries included; for a streamed GET the time to the response headers.",
		Buckets: durationBuckets,
	}, []string{"op"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "retries_total",
		Help: "Retries the SDK made of requests to the object store, by operation.",
	}, []string{"op"})
	m.bytesRead = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "bytes_read_total",
		Help: "Bytes of object data received from the object store.",
	})
	m.bytesWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "bytes_written_total",
		Help: "Bytes of object data uploaded to the object store (successful puts and parts).",
	})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "credential", Name: "refreshes_total",
		Help: "Refreshes of expiring AWS credentials by result (ok, error).",
	}, []string{"result"})
	m.expiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "credential", Name: "expiry_timestamp_seconds",
		Help: "When the credentials in use expire, in Unix seconds; 0 when they do not expire.",
	})
	m.credInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "credential", Name: "info",
		Help: "Always 1; source names where the credentials come from (never a secret).",
	}, []string{"source"})
	// Both results exist from the start, so a rate() over them works
	// before the first refresh.
	m.refreshes.WithLabelValues(refreshOK)
	m.refreshes.WithLabelValues(refreshError)

	// Info gauges are always 1; their labels carry the information.
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; version is the bucketfs version.",
		ConstLabels: prometheus.Labels{"version": o.Version},
	})
	buildInfo.Set(1)
	mountInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "mount_info",
		Help:        "Always 1; source is what is mounted, mountpoint where.",
		ConstLabels: prometheus.Labels{"source": o.Source, "mountpoint": o.MountPoint},
	})
	mountInfo.Set(1)
	cacheFunc := func(pick func(CacheStats) int64) func() float64 {
		return func() float64 {
			if f := m.cache.Load(); f != nil {
				return float64(pick((*f)()))
			}
			return 0
		}
	}
	m.opTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "fuse", Name: "op_duration_seconds",
		Help:    "Time the mount took to answer a file operation (lookup, read, readdir...), by operation.",
		Buckets: durationBuckets,
	}, []string{"op"})
	opFunc := func(pick func(InFlightStats) float64) func() float64 {
		return func() float64 {
			if f := m.inflight.Load(); f != nil {
				return pick((*f)())
			}
			return 0
		}
	}
	m.reg.MustRegister(
		m.opTime,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "fuse", Name: "ops_in_flight",
			Help: "File operations the mount is serving now.",
		}, opFunc(func(s InFlightStats) float64 { return float64(s.InFlight) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "fuse", Name: "ops_stuck",
			Help: "File operations in flight for longer than the request timeout plus a margin: the mount is not answering them.",
		}, opFunc(func(s InFlightStats) float64 { return float64(s.Stuck) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "fuse", Name: "ops_stuck_total",
			Help: "File operations ever reported stuck (each is logged at warn level with what it waits for).",
		}, opFunc(func(s InFlightStats) float64 { return float64(s.StuckTotal) })),
	)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.retries, m.bytesRead, m.bytesWritten,
		m.refreshes, m.expiry, m.credInfo,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "block_hits_total",
			Help: "Blocks of file data served from the cache (or from a fetch already in flight).",
		}, cacheFunc(func(s CacheStats) int64 { return s.BlockHits })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "block_misses_total",
			Help: "Blocks of file data a reader waited for that were not in memory (read from the disk cache, or by a GET).",
		}, cacheFunc(func(s CacheStats) int64 { return s.BlockMisses })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "cache", Name: "bytes",
			Help: "Bytes of file data held in the cache now.",
		}, cacheFunc(func(s CacheStats) int64 { return s.CachedBytes })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "cache", Name: "capacity_bytes",
			Help: "Bytes of file data the cache may hold (--cache-size).",
		}, cacheFunc(func(s CacheStats) int64 { return s.CapacityBytes })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "cache", Name: "metadata_bytes",
			Help: "Bytes counted for the listings and file attributes cached now.",
		}, cacheFunc(func(s CacheStats) int64 { return s.MetaBytes })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "cache", Name: "metadata_capacity_bytes",
			Help: "Bytes the metadata cache may hold (--metadata-cache-size).",
		}, cacheFunc(func(s CacheStats) int64 { return s.MetaCapacity })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "cache", Name: "metadata_entries",
			Help: "Listings and per-name records cached now.",
		}, cacheFunc(func(s CacheStats) int64 { return s.MetaEntries })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cache", Name: "metadata_evictions_total",
			Help: "Listings and per-name records dropped, least recently used first, to stay within the bound.",
		}, cacheFunc(func(s CacheStats) int64 { return s.MetaEvictions })),
		buildInfo, mountInfo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "mount_start_timestamp_seconds",
			Help: "When the mount started, in Unix seconds.",
		}, func() float64 { return float64(o.Start.UnixNano()) / 1e9 }),
	)
	return m
}

// Registry is the private registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetCacheStats installs the hook the cache figures are read through at
// every scrape. Until it is called they are 0: the cache is built after
// the store it reads through, which is metered first.
func (m *Metrics) SetCacheStats(f func() CacheStats) {
	m.cache.Store(&f)
}

// SetInFlightStats installs the hook the figures of operations in flight
// are read through at every scrape.
func (m *Metrics) SetInFlightStats(f func() InFlightStats) {
	m.inflight.Store(&f)
}

// ObserveOp records one answered file operation; it makes Metrics a
// watchdog.Observer.
func (m *Metrics) ObserveOp(op string, took time.Duration) {
	m.opTime.WithLabelValues(op).Observe(took.Seconds())
}

// ObserveRequest records one store call: op and status label it, took is
// its duration, retries how many times the SDK retried it.
func (m *Metrics) ObserveRequest(op, status string, took time.Duration, retries int64) {
	m.requests.WithLabelValues(op, status).Inc()
	m.duration.WithLabelValues(op).Observe(took.Seconds())
	c := m.retries.WithLabelValues(op)
	if retries > 0 {
		c.Add(float64(retries))
	}
}

// AddBytesRead counts object data received.
func (m *Metrics) AddBytesRead(n int64) {
	if n > 0 {
		m.bytesRead.Add(float64(n))
	}
}

// AddBytesWritten counts object data uploaded.
func (m *Metrics) AddBytesWritten(n int64) {
	if n > 0 {
		m.bytesWritten.Add(float64(n))
	}
}

// SetCredentials records where the credentials come from and when the
// ones retrieved first expire (zero: never).
func (m *Metrics) SetCredentials(source string, expires time.Time) {
	m.credInfo.Reset()
	m.credInfo.WithLabelValues(source).Set(1)
	m.setExpiry(expires)
}

// CredentialRefreshed records one refresh; it has the signature of
// auth.Options.OnRefresh.
func (m *Metrics) CredentialRefreshed(ok bool, expires time.Time) {
	result := refreshOK
	if !ok {
		result = refreshError
	}
	m.refreshes.WithLabelValues(result).Inc()
	m.setExpiry(expires)
}

func (m *Metrics) setExpiry(expires time.Time) {
	if expires.IsZero() {
		m.expiry.Set(0)
		return
	}
	m.expiry.Set(float64(expires.Unix()))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing collector (process figures on an odd kernel) must
		// not hide the others.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Mux is what Serve serves: /metrics, the profiler under /debug/pprof/
// and the operations in flight at /debug/ops, on a mux of its own (never http.DefaultServeMux, which
// any imported package may add handlers to).
func (m *Metrics) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/ops", m.serveOps)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<html><body><h1>bucketfs</h1><p><a href="/metrics">/metrics</a> <a href="/debug/pprof/">/debug/pprof/</a></p></body></html>`))
	})
	return mux
}

// Serve answers HTTP on ln until ctx ends, then shuts the server down
// (giving scrapes in progress a few seconds) and returns nil. ln is
// opened by the caller, before mounting, so a busy port fails the mount.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.Mux(),
		ReadHeaderTimeout: readHeaderTimeout,
		// No WriteTimeout: a CPU profile or trace runs for ?seconds=N
		// (30 by default) before it writes anything.
		IdleTimeout: time.Minute,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGracePeriod)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}
