package metrics

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// DiskStats are the figures of the disk tier of the block cache
// (--disk-cache), read at every scrape through the hook given to
// SetDiskStats.
type DiskStats struct {
	Hits, Misses            int64
	BytesRead, BytesWritten int64
	Evictions, Errors       int64
	Dropped                 int64
	Bytes, Capacity         int64
	// Off is why the tier stopped, "" while it works.
	Off string
}

// DiskSnapshot is the disk tier in a Snapshot; absent without one.
type DiskSnapshot struct {
	Hits         int64  `json:"hits"`
	Misses       int64  `json:"misses"`
	BytesRead    int64  `json:"bytes_read"`
	BytesWritten int64  `json:"bytes_written"`
	Evictions    int64  `json:"evictions"`
	Errors       int64  `json:"errors"`
	Dropped      int64  `json:"dropped"`
	Bytes        int64  `json:"bytes"`
	Capacity     int64  `json:"capacity_bytes"`
	Off          string `json:"off,omitempty"`
}

// diskMetric is one figure of the disk tier.
type diskMetric struct {
	name, help string
	kind       prometheus.ValueType
	pick       func(DiskStats) int64
	set        func(*DiskSnapshot, int64)
}

var diskMetrics = []diskMetric{
	{"hits_total", "Blocks read from the disk cache (valid copies found on a miss in memory).", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.Hits }, func(d *DiskSnapshot, v int64) { d.Hits = v }},
	{"misses_total", "Blocks missing from memory that the disk cache did not hold either (or held damaged).", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.Misses }, func(d *DiskSnapshot, v int64) { d.Misses = v }},
	{"read_bytes_total", "Bytes of file data read from the disk cache.", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.BytesRead }, func(d *DiskSnapshot, v int64) { d.BytesRead = v }},
	{"written_bytes_total", "Bytes of file data written to the disk cache.", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.BytesWritten }, func(d *DiskSnapshot, v int64) { d.BytesWritten = v }},
	{"evictions_total", "Blocks removed from the disk cache to stay under --disk-cache-size.", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.Evictions }, func(d *DiskSnapshot, v int64) { d.Evictions = v }},
	{"errors_total", "Block files dropped as corrupt or cut short, and failed reads and writes of the disk cache.", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.Errors }, func(d *DiskSnapshot, v int64) { d.Errors = v }},
	{"dropped_total", "Blocks not written to the disk cache because its write queue was full.", prometheus.CounterValue,
		func(s DiskStats) int64 { return s.Dropped }, func(d *DiskSnapshot, v int64) { d.Dropped = v }},
	{"bytes", "Bytes the disk cache holds now.", prometheus.GaugeValue,
		func(s DiskStats) int64 { return s.Bytes }, func(d *DiskSnapshot, v int64) { d.Bytes = v }},
	{"capacity_bytes", "Bytes the disk cache may hold (--disk-cache-size).", prometheus.GaugeValue,
		func(s DiskStats) int64 { return s.Capacity }, func(d *DiskSnapshot, v int64) { d.Capacity = v }},
}

const (
	diskPrefix  = namespace + "_disk_cache_"
	nameDiskOff = diskPrefix + "off_info"
)

// diskCollector reads the hook once per scrape, so the figures agree.
type diskCollector struct{ m *Metrics }

func (c diskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range diskMetrics {
		ch <- prometheus.NewDesc(diskPrefix+d.name, d.help, nil, nil)
	}
	ch <- prometheus.NewDesc(nameDiskOff, "1 when the disk cache turned itself off (a full or failing disk); reason says why.", []string{"reason"}, nil)
}

func (c diskCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.disk.Load()
	if f == nil {
		return
	}
	s, ok := (*f)()
	if !ok {
		return
	}
	for _, d := range diskMetrics {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(diskPrefix+d.name, d.help, nil, nil), d.kind, float64(d.pick(s)))
	}
	if s.Off != "" {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(nameDiskOff, "1 when the disk cache turned itself off (a full or failing disk); reason says why.", []string{"reason"}, nil),
			prometheus.GaugeValue, 1, s.Off)
	}
}

// SetDiskStats installs the hook the disk tier's figures are read through
// at every scrape; ok false (or no hook) means the mount has no disk tier,
// and its series are absent.
func (m *Metrics) SetDiskStats(f func() (DiskStats, bool)) {
	if m.disk.Swap(&f) == nil {
		m.reg.MustRegister(diskCollector{m})
	}
}

// diskFamily fills s.Disk from one family of the disk tier; it reports
// whether the family was one.
func diskFamily(s *Snapshot, f *dto.MetricFamily) bool {
	name, ok := strings.CutPrefix(f.GetName(), diskPrefix)
	if !ok {
		return false
	}
	if s.Disk == nil {
		s.Disk = &DiskSnapshot{}
	}
	for _, mt := range f.GetMetric() {
		if f.GetName() == nameDiskOff {
			s.Disk.Off = labels(mt)["reason"]
			continue
		}
		for _, d := range diskMetrics {
			if d.name == name {
				v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
				d.set(s.Disk, int64(v))
			}
		}
	}
	return true
}

// writeDisk is the disk tier's line of the status text.
func (s Snapshot) writeDisk(b *strings.Builder) {
	d := s.Disk
	if d == nil {
		return
	}
	state := ""
	if d.Off != "" {
		state = "; OFF: " + d.Off
	}
	fmt.Fprintf(b, "disk cache   %d hits, %d misses; %s of %s in use; %d evicted, %d errors, %d not written (queue full)%s\n",
		d.Hits, d.Misses, formatBytes(d.Bytes), formatBytes(d.Capacity), d.Evictions, d.Errors, d.Dropped, state)
}
