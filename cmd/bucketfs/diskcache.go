package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/cache/disk"
	"github.com/bucketfs/bucketfs/metrics"
)

// openDiskCache opens the disk tier of --disk-cache, or returns nil
// without one. warning is for the user (a network file system, too little
// free space).
func openDiskCache(c mountConfig, log *slog.Logger) (*disk.Cache, string, error) {
	if c.DiskCache == "" {
		return nil, "", nil
	}
	return disk.Open(disk.Config{Dir: c.DiskCache, Limit: c.DiskCacheSize, Logger: log})
}

// closeDiskCache writes out the blocks still queued (for at most 10s, well
// inside the unit's TimeoutStopSec) and releases the directory.
func closeDiskCache(d *disk.Cache) {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Close(ctx)
}

// warnUser logs a warning and shows it to whoever ran the mount: through
// the notify pipe from a daemon, else on stderr.
func warnUser(warning string, notify *notifier, stderr io.Writer, log *slog.Logger) {
	if warning == "" {
		return
	}
	log.Warn(warning)
	if notify != nil {
		notify.warn(warning)
	} else {
		fmt.Fprintln(stderr, "bucketfs mount: warning: "+warning)
	}
}

// diskStats reads the disk tier's figures for the metrics.
func diskStats(ch *cache.Cache) func() (metrics.DiskStats, bool) {
	return func() (metrics.DiskStats, bool) {
		s, ok := ch.DiskStats()
		return metrics.DiskStats{
			Hits: s.Hits, Misses: s.Misses, BytesRead: s.BytesRead, BytesWritten: s.BytesWrite,
			Evictions: s.Evictions, Errors: s.Errors, Dropped: s.Dropped,
			Bytes: s.Bytes, Capacity: s.Limit, Off: s.Off,
		}, ok
	}
}

// diskAttrs are the disk tier's figures for the unmount's log line.
func diskAttrs(ch *cache.Cache) []any {
	s, ok := ch.DiskStats()
	if !ok {
		return nil
	}
	return []any{"disk_hits", s.Hits, "disk_misses", s.Misses, "disk_bytes_read", s.BytesRead,
		"disk_bytes_written", s.BytesWrite, "disk_evictions", s.Evictions, "disk_errors", s.Errors,
		"disk_dropped", s.Dropped, "disk_bytes", s.Bytes, "disk_off", s.Off}
}
