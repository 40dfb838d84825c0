package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/bucketfs/bucketfs/internal/watchdog"
)

// Snapshot is the key figures of a running mount, for "bucketfs status"
// (text or JSON). It is built from the registry, so it says what /metrics
// says.
type Snapshot struct {
	Source        string    `json:"source"`
	MountPoint    string    `json:"mountpoint"`
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`

	// Requests sums Ops.
	Requests OpStats   `json:"requests"`
	Ops      []OpStats `json:"ops"` // by operation name

	BytesRead    int64 `json:"bytes_read"`
	BytesWritten int64 `json:"bytes_written"`

	Cache       CacheSnapshot      `json:"cache"`
	Disk        *DiskSnapshot      `json:"disk_cache,omitempty"`
	Credentials CredentialSnapshot `json:"credentials"`
	// Identities: a per-user mount's (identity.go); nil otherwise.
	Identities *IdentitySnapshot `json:"identities,omitempty"`

	// OpsInFlight and OpsStuck count the file operations being served
	// and those of them stuck; Slow lists those in flight for SlowAfter or
	// longer, oldest first (filled in by the caller, from the watchdog).
	OpsInFlight int64           `json:"ops_in_flight"`
	OpsStuck    int64           `json:"ops_stuck"`
	Slow        []watchdog.Info `json:"slow_ops"`
}

// SlowAfter is the age from which an operation in flight is listed in
// the status.
const SlowAfter = 5 * time.Second

// OpStats are the requests of one operation (or, as Snapshot.Requests, of
// all of them).
type OpStats struct {
	Op       string `json:"op,omitempty"`
	Requests int64  `json:"requests"`
	// Errors are requests whose status is not ok (not_found included: a
	// lookup of a missing name costs a request too).
	Errors   int64            `json:"errors"`
	Retries  int64            `json:"retries"`
	ByStatus map[string]int64 `json:"by_status,omitempty"`
	// MeanSeconds is the mean duration (for a streamed GET, to the
	// response headers).
	MeanSeconds float64 `json:"mean_seconds"`
	sumSeconds  float64
}

// CacheSnapshot is the data cache.
type CacheSnapshot struct {
	BlockHits     int64   `json:"block_hits"`
	BlockMisses   int64   `json:"block_misses"`
	HitRatio      float64 `json:"hit_ratio"` // hits / (hits + misses); 0 before the first read
	Bytes         int64   `json:"bytes"`
	CapacityBytes int64   `json:"capacity_bytes"`
	// The metadata cache: listings and per-name records.
	MetadataBytes         int64 `json:"metadata_bytes"`
	MetadataCapacityBytes int64 `json:"metadata_capacity_bytes"`
	MetadataEntries       int64 `json:"metadata_entries"`
	MetadataEvictions     int64 `json:"metadata_evictions"`
}

// CredentialSnapshot is where the credentials come from and their refreshes.
type CredentialSnapshot struct {
	Source        string `json:"source"`
	RefreshesOK   int64  `json:"refreshes_ok"`
	RefreshErrors int64  `json:"refresh_errors"`
	// Expires is when the credentials in use expire; absent when they
	// do not.
	Expires *time.Time `json:"expires,omitempty"`
}

// WatchInFlight makes t's operations in flight part of the figures: the
// ops_in_flight and ops_stuck gauges and ops_stuck_total, and the list
// served at /debug/ops.
func (m *Metrics) WatchInFlight(t *watchdog.Tracker) {
	m.tracker.Store(t)
	m.SetInFlightStats(func() InFlightStats {
		return InFlightStats{InFlight: t.InFlight(), Stuck: t.Stuck(), StuckTotal: t.StuckTotal()}
	})
}

// StatusFiles makes the content of the mount's control files
// (.bucketfs/status and status.json) from one snapshot, at each open, with
// the operations t has had in flight for SlowAfter or longer (t may be
// nil); "bucketfs status" reads the JSON one.
func (m *Metrics) StatusFiles(t *watchdog.Tracker) func() (text, js []byte) {
	return func() (text, js []byte) {
		s := m.Snapshot()
		if t != nil {
			s.Slow = t.Older(SlowAfter)
		}
		var b bytes.Buffer
		_ = s.WriteText(&b) // a bytes.Buffer takes every write
		js, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			// A Snapshot is plain numbers and strings; this cannot
			// happen, but the file must hold something readable.
			js, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		return b.Bytes(), append(js, '\n')
	}
}

// Snapshot gathers the registry and condenses it.
func (m *Metrics) Snapshot() Snapshot {
	// Gather reports a collector's failure (the process collector on a
	// kernel without /proc) alongside whatever it could gather; the
	// families used here are all bucketfs's own.
	fams, _ := m.reg.Gather()
	return snapshotOf(fams, m.opts.Now())
}

func snapshotOf(fams []*dto.MetricFamily, now time.Time) Snapshot {
	var s Snapshot
	ops := map[string]*OpStats{}
	op := func(name string) *OpStats {
		o := ops[name]
		if o == nil {
			o = &OpStats{Op: name, ByStatus: map[string]int64{}}
			ops[name] = o
		}
		return o
	}
	for _, f := range fams {
		if diskFamily(&s, f) {
			continue
		}
		for _, mt := range f.GetMetric() {
			l := labels(mt)
			switch f.GetName() {
			case nameMountInfo:
				s.Source, s.MountPoint = l["source"], l["mountpoint"]
			case nameBuildInfo:
				s.Version = l["version"]
			case nameStartTimestamp:
				sec := mt.GetGauge().GetValue()
				s.Started = time.Unix(0, int64(sec*1e9))
			case nameRequests:
				n := int64(mt.GetCounter().GetValue())
				o := op(l["op"])
				o.Requests += n
				o.ByStatus[l["status"]] += n
				if l["status"] != statusOK {
					o.Errors += n
				}
			case nameRetries:
				op(l["op"]).Retries += int64(mt.GetCounter().GetValue())
			case nameDuration:
				op(l["op"]).sumSeconds += mt.GetHistogram().GetSampleSum()
			case nameBytesRead:
				s.BytesRead = int64(mt.GetCounter().GetValue())
			case nameBytesWritten:
				s.BytesWritten = int64(mt.GetCounter().GetValue())
			case nameCacheHits:
				s.Cache.BlockHits = int64(mt.GetCounter().GetValue())
			case nameCacheMisses:
				s.Cache.BlockMisses = int64(mt.GetCounter().GetValue())
			case nameCacheBytes:
				s.Cache.Bytes = int64(mt.GetGauge().GetValue())
			case nameCacheCapacity:
				s.Cache.CapacityBytes = int64(mt.GetGauge().GetValue())
			case nameMetaBytes:
				s.Cache.MetadataBytes = int64(mt.GetGauge().GetValue())
			case nameMetaCapacity:
				s.Cache.MetadataCapacityBytes = int64(mt.GetGauge().GetValue())
			case nameMetaEntries:
				s.Cache.MetadataEntries = int64(mt.GetGauge().GetValue())
			case nameMetaEvictions:
				s.Cache.MetadataEvictions = int64(mt.GetCounter().GetValue())
			case nameOpsInFlight:
				s.OpsInFlight = int64(mt.GetGauge().GetValue())
			case nameOpsStuck:
				s.OpsStuck = int64(mt.GetGauge().GetValue())
			case nameCredentialInfo:
				s.Credentials.Source = l["source"]
			case nameRefreshes:
				n := int64(mt.GetCounter().GetValue())
				if l["result"] == refreshOK {
					s.Credentials.RefreshesOK = n
				} else {
					s.Credentials.RefreshErrors += n
				}
			case nameExpiry:
				if v := mt.GetGauge().GetValue(); v > 0 {
					t := time.Unix(int64(v), 0).UTC()
					s.Credentials.Expires = &t
				}
			default:
				s.identityFamily(f.GetName(), mt.GetGauge().GetValue()+mt.GetCounter().GetValue(), l)
			}
		}
	}
	if !s.Started.IsZero() {
		s.UptimeSeconds = math.Max(0, now.Sub(s.Started).Seconds())
	}
	if seen := s.Cache.BlockHits + s.Cache.BlockMisses; seen > 0 {
		s.Cache.HitRatio = float64(s.Cache.BlockHits) / float64(seen)
	}
	s.Requests.ByStatus = map[string]int64{}
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		o := ops[name]
		// A series without requests (none today) is not an operation
		// the mount used.
		if o.Requests == 0 {
			continue
		}
		o.MeanSeconds = o.sumSeconds / float64(o.Requests)
		s.Ops = append(s.Ops, *o)
		s.Requests.Requests += o.Requests
		s.Requests.Errors += o.Errors
		s.Requests.Retries += o.Retries
		s.Requests.sumSeconds += o.sumSeconds
		for st, n := range o.ByStatus {
			s.Requests.ByStatus[st] += n
		}
	}
	if s.Requests.Requests > 0 {
		s.Requests.MeanSeconds = s.Requests.sumSeconds / float64(s.Requests.Requests)
	}
	return s
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// WriteText writes s as a short aligned table for people.
func (s Snapshot) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mount        %s on %s\n", s.Source, s.MountPoint)
	fmt.Fprintf(&b, "version      %s, up %s\n", s.Version, formatUptime(time.Duration(s.UptimeSeconds*float64(time.Second))))
	fmt.Fprintf(&b, "read         %s from S3\n", formatBytes(s.BytesRead))
	fmt.Fprintf(&b, "written      %s to S3\n", formatBytes(s.BytesWritten))
	fmt.Fprintf(&b, "cache        %d hits, %d misses (%.1f%% hits); %s of %s in use\n",
		s.Cache.BlockHits, s.Cache.BlockMisses, 100*s.Cache.HitRatio, formatBytes(s.Cache.Bytes), formatBytes(s.Cache.CapacityBytes))
	fmt.Fprintf(&b, "metadata     %d entries, %s of %s in use; %d evicted\n",
		s.Cache.MetadataEntries, formatBytes(s.Cache.MetadataBytes), formatBytes(s.Cache.MetadataCapacityBytes), s.Cache.MetadataEvictions)
	s.writeDisk(&b)
	expires := "do not expire"
	if s.Credentials.Expires != nil {
		expires = "expire " + s.Credentials.Expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(&b, "credentials  %s; %s; refreshes: %d ok, %d failed\n",
		s.Credentials.Source, expires, s.Credentials.RefreshesOK, s.Credentials.RefreshErrors)
	if id := s.Identities; id != nil {
		fmt.Fprintf(&b, "identities   per user: %d rules; in use %s; refreshes: %d ok, %d failed; %d requests refused (no identity); %d reloads\n",
			id.Rules, formatInUse(id.InUse), id.Refreshes, id.RefreshFailures, id.Denied, id.Reloads)
	}
	fmt.Fprintf(&b, "in flight    %d file operations, %d stuck, %d over %s\n", s.OpsInFlight, s.OpsStuck, len(s.Slow), SlowAfter)
	for _, o := range s.Slow {
		fmt.Fprintf(&b, "  %-11s %s for %s (pid %d, uid %d)\n", o.Op, o.Path, time.Duration(o.Seconds*float64(time.Second)).Round(time.Second), o.PID, o.UID)
	}
	b.WriteString("\n")
	width := len("requests") - 2
	for _, o := range s.Ops {
		width = max(width, len(o.Op))
	}
	width += 2
	fmt.Fprintf(&b, "%-*s %10s %8s %8s %9s\n", width, "requests", "total", "errors", "retries", "mean")
	row := func(name string, o OpStats) {
		fmt.Fprintf(&b, "%-*s %10d %8d %8d %9s\n", width, name, o.Requests, o.Errors, o.Retries, formatSeconds(o.MeanSeconds))
	}
	for _, o := range s.Ops {
		row("  "+o.Op, o)
	}
	row("  all", s.Requests)
	if errs := errorStatuses(s.Requests.ByStatus); errs != "" {
		fmt.Fprintf(&b, "errors by status: %s\n", errs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func errorStatuses(by map[string]int64) string {
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(by)) {
		if st != statusOK && by[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, by[st]))
		}
	}
	return strings.Join(parts, ", ")
}

func formatSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

func formatUptime(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// formatBytes is n in the largest binary unit it has a whole one of.
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// serveOps lists every operation in flight, oldest first, one a line:
// seconds, operation, path, pid and uid. It reads no file of the mount, so
// it answers even when the mount does not.
func (m *Metrics) serveOps(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	t := m.tracker.Load()
	if t == nil {
		fmt.Fprintln(w, "no watchdog on this mount")
		return
	}
	ops := t.Older(0)
	fmt.Fprintf(w, "%d operations in flight\n", len(ops))
	for _, o := range ops {
		fmt.Fprintf(w, "%9.1fs %-11s %s pid=%d uid=%d\n", o.Seconds, o.Op, o.Path, o.PID, o.UID)
	}
}
