package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/csi"
)

const csiUsage = `Usage:
  bucketfs csi --node-id NODE [flags]

Serves the Kubernetes CSI Identity and Node services on a unix socket, so
that a PersistentVolume with spec.csi.driver: ` + csi.DriverName + ` mounts a
bucket in the pods that claim it. Each mount is a "bucketfs mount" daemon of
its own; volume attributes and spec.mountOptions use the /etc/fstab option
words. deploy/ runs it as a DaemonSet; docs/KUBERNETES.md explains it all.

Flags:
`

// fstabTranslator turns volume option words into mount flags with the
// /etc/fstab table (fstab.go): one vocabulary for both.
func fstabTranslator(words []string) ([]string, error) {
	flags, _, err := translateOptions(words, false)
	return flags, err
}

func csiCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("csi")
	endpoint := fs.String("csi-endpoint", "unix:///csi/csi.sock", "unix socket to serve CSI on (`unix:///PATH` or a path)")
	nodeID := fs.String("node-id", os.Getenv("NODE_NAME"), "this node's `name` (default $NODE_NAME)")
	stateDir := fs.String("state-dir", "/var/lib/bucketfs-csi", "`directory` on the node's disk for the mounts' records, logs and staged writes")
	metricsAddr := fs.String("metrics-addr", "", "serve the metrics of every mount at http://`HOST:PORT`/metrics (default off)")
	logLevel := fs.String("log-level", "info", "`level`: debug, info, warn or error")
	saDir := fs.String("serviceaccount-dir", csi.DefaultServiceAccountDir, "`directory` with the driver's own Kubernetes token and the cluster CA, to read service accounts' IAM role annotations")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if isHelp(err) {
			fmt.Fprint(stdout, csiUsage)
			printFlags(stdout, fs)
			return err
		}
		return usageError{err.Error()}
	}
	if len(pos) != 0 {
		return usagef("unexpected arguments %q", pos)
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	if err := checkMetricsAddr(*metricsAddr); err != nil {
		return err
	}
	socket := strings.TrimPrefix(*endpoint, "unix://")
	if !strings.HasPrefix(socket, "/") {
		return usagef("--csi-endpoint %q: want unix:///PATH", *endpoint)
	}
	if os.Geteuid() != 0 {
		return errors.New("the CSI driver mounts for pods of any user and must run as root (the DaemonSet in deploy/ does)")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the bucketfs executable: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := csi.New(csi.Config{
		NodeID: *nodeID, StateDir: *stateDir, Binary: exe, Version: versionString(),
		Translate: fstabTranslator, Env: os.Environ(), Logger: log, ServiceAccountDir: *saDir,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Before serving: a restarted driver first takes over what it mounted.
	d.Recover(ctx)
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("cannot serve metrics on %s: %v", *metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.MetricsHandler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	// Stopping the driver leaves the mounts alone: pods keep using them,
	// and the next driver adopts them.
	return d.Serve(ctx, socket)
}
