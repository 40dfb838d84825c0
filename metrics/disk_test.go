package metrics

import (
	"strings"
	"testing"
)

// TestDiskCache: the disk tier's figures are absent without one, then in
// /metrics, the snapshot and the status text, with why it turned off.
func TestDiskCache(t *testing.T) {
	m := newTest()
	if s := scrape(t, m.Handler()); strings.Contains(s, "disk_cache") {
		t.Fatal("disk cache series without a disk cache")
	}
	if m.Snapshot().Disk != nil {
		t.Fatal("disk cache in the snapshot without one")
	}
	st := DiskStats{Hits: 7, Misses: 3, BytesRead: 7 << 20, BytesWritten: 10 << 20, Evictions: 2, Errors: 1, Dropped: 4, Bytes: 8 << 20, Capacity: 1 << 30}
	m.SetDiskStats(func() (DiskStats, bool) { return st, true })
	for _, tc := range []struct {
		off   string
		lines []string
		text  string
	}{
		{"", []string{
			"bucketfs_disk_cache_hits_total 7",
			"bucketfs_disk_cache_misses_total 3",
			"bucketfs_disk_cache_read_bytes_total 7.340032e+06",
			"bucketfs_disk_cache_written_bytes_total 1.048576e+07",
			"bucketfs_disk_cache_evictions_total 2",
			"bucketfs_disk_cache_errors_total 1",
			"bucketfs_disk_cache_dropped_total 4",
			"bucketfs_disk_cache_bytes 8.388608e+06",
			"bucketfs_disk_cache_capacity_bytes 1.073741824e+09",
		}, "disk cache   7 hits, 3 misses; 8.0 MiB of 1.0 GiB in use; 2 evicted, 1 errors, 4 not written (queue full)\n"},
		{"no space left on device (/var/tmp/b)", []string{
			`bucketfs_disk_cache_off_info{reason="no space left on device (/var/tmp/b)"} 1`,
		}, "in use; 2 evicted, 1 errors, 4 not written (queue full); OFF: no space left on device (/var/tmp/b)\n"},
	} {
		st.Off = tc.off
		s := scrape(t, m.Handler())
		for _, l := range tc.lines {
			if !strings.Contains(s, "\n"+l+"\n") {
				t.Errorf("/metrics lacks %q", l)
			}
		}
		snap := m.Snapshot()
		want := DiskSnapshot{Hits: 7, Misses: 3, BytesRead: 7 << 20, BytesWritten: 10 << 20, Evictions: 2, Errors: 1, Dropped: 4, Bytes: 8 << 20, Capacity: 1 << 30, Off: tc.off}
		if snap.Disk == nil || *snap.Disk != want {
			t.Errorf("snapshot %+v, want %+v", snap.Disk, want)
		}
		var b strings.Builder
		snap.WriteText(&b)
		if !strings.Contains(b.String(), tc.text) {
			t.Errorf("status text lacks %q:\n%s", tc.text, b.String())
		}
	}
}
