package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/metrics"
)

// checkMetricsAddr validates --metrics-addr: HOST:PORT, or "" for off.
func checkMetricsAddr(addr string) error {
	if err := metricsAddrError(addr); err != nil {
		return usagef("--metrics-addr %q: %v", addr, err)
	}
	return nil
}

// checkMetricsAddrOption is checkMetricsAddr for the fstab option.
func checkMetricsAddrOption(v string) (string, error) {
	return v, metricsAddrError(v)
}

func metricsAddrError(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want HOST:PORT, e.g. 127.0.0.1:9100")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("the port must be a number from 0 to 65535")
	}
	return nil
}

// listenMetrics opens --metrics-addr, before anything is mounted, so a port
// already in use fails the mount with one line and leaves nothing mounted.
// It returns nil when metrics are off.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("cannot serve metrics on %s: the address is already in use (another bucketfs mount?): give each mount its own port with --metrics-addr, or leave it out", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("cannot serve metrics on %s: no interface of this host has that address: use 127.0.0.1:PORT", addr)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("cannot serve metrics on %s: permission denied (ports below 1024 need root): use a port from 1024 up", addr)
	case err != nil:
		return nil, fmt.Errorf("cannot serve metrics on %s: %v: check --metrics-addr", addr, err)
	}
	return ln, nil
}

// serveMetrics answers /metrics and /debug/pprof/ on ln until ctx ends.
func serveMetrics(ctx context.Context, m *metrics.Metrics, ln net.Listener, log *slog.Logger) {
	addr := ln.Addr().(*net.TCPAddr)
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	if !addr.IP.IsLoopback() {
		log.Warn("the metrics address is reachable from other hosts, and so is the profiler under /debug/pprof/ on it: bind it to 127.0.0.1 unless it is firewalled",
			"addr", ln.Addr().String())
	}
	if err := m.Serve(ctx, ln); err != nil {
		log.Error("metrics server stopped", "err", err)
	}
}

// newMountMetrics starts the figures of one mount; they are collected
// whether or not --metrics-addr serves them, for "bucketfs status".
func newMountMetrics(c mountConfig) *metrics.Metrics {
	return metrics.New(metrics.Options{Version: versionString(), Source: c.source(), MountPoint: c.MountPoint})
}

// cacheStats reads the cache's counters for every scrape.
func cacheStats(ch *cache.Cache) func() metrics.CacheStats {
	return func() metrics.CacheStats {
		s, ms := ch.Stats(), ch.MetadataStats()
		return metrics.CacheStats{BlockHits: s.BlockHits, BlockMisses: s.BlockMisses, CachedBytes: s.CachedBytes, CapacityBytes: s.CapacityBytes,
			MetaBytes: ms.Bytes, MetaCapacity: ms.Limit, MetaEntries: int64(ms.Items), MetaEvictions: ms.Evictions}
	}
}
