// Command delayline is a TCP proxy that gives a loopback S3 server the shape
// of S3 seen from an EC2 host: every chunk of bytes is forwarded Delay late in
// each direction (so a request/response round trip costs 2*Delay more) and
// each direction of each connection is capped at Rate bytes per second, so
// throughput has to come from many connections, as with S3. --total-rate
// caps all connections together, per direction, as the network interface
// of an EC2 host does (its baseline bandwidth: 0.75-5 Gbit/s on common
// instance sizes); by default there is no such cap.
//
//	delayline --target 127.0.0.1:7070 [--listen 127.0.0.1:0] [--delay 10ms]
//	          [--rate 100MB] [--total-rate 0] [--addr-file PATH]
//
// It prints the address it listens on (one line, "127.0.0.1:PORT") on stdout
// and, with --addr-file, writes it to that file once it accepts connections.
// SIGUSR1 logs the connection and byte counts so far on stderr ("msg=stats");
// SIGINT or SIGTERM stop it, and it logs them once more. Both
// addresses must be loopback: the benchmark bed never sends traffic off the
// machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "delayline: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("delayline", flag.ContinueOnError)
	fl.SetOutput(stderr)
	listen := fl.String("listen", "127.0.0.1:0", "loopback `address` to listen on (port 0 picks a free one)")
	target := fl.String("target", "", "loopback `address` to forward to (host:port, required)")
	delay := fl.Duration("delay", 10*time.Millisecond, "added latency per direction")
	rateS := fl.String("rate", "100MB", "cap per direction per connection in bytes/s (100MB = 100,000,000; 0 = none)")
	totalS := fl.String("total-rate", "0", "cap per direction of all connections together in bytes/s (125MB = 1 Gbit/s; 0 = none)")
	addrFile := fl.String("addr-file", "", "write the listening address to `path` once ready")
	verbose := fl.Bool("v", false, "log every connection's end")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *target == "" || fl.NArg() != 0 {
		fl.Usage()
		return errors.New("want --target HOST:PORT and no arguments")
	}
	if *delay < 0 {
		return errors.New("--delay must not be negative")
	}
	rate, err := parseRate(*rateS)
	if err != nil {
		return fmt.Errorf("--rate %w", err)
	}
	total, err := parseRate(*totalS)
	if err != nil {
		return fmt.Errorf("--total-rate %w", err)
	}
	for _, a := range []string{*listen, *target} {
		if err := requireLoopback(a); err != nil {
			return err
		}
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	fmt.Fprintln(stdout, addr)
	if *addrFile != "" {
		// Write then rename, so a reader never sees half an address.
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			ln.Close()
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &Proxy{Target: *target, Delay: *delay, Rate: rate, TotalRate: total, Log: log}
	// SIGUSR1 logs the byte counts, so a benchmark can see how much a
	// workload fetched (over-fetch by read-ahead shows up here).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			conns, up, down := p.Stats()
			log.Info("stats", "connections", conns, "bytes_to_target", up, "bytes_from_target", down)
		}
	}()
	log.Info("delay line up", "listen", addr, "target", *target, "delay", *delay, "rate_bytes_per_s", rate, "total_rate_bytes_per_s", total)
	err = p.Serve(ctx, ln)
	conns, up, down := p.Stats()
	log.Info("delay line down", "connections", conns, "bytes_to_target", up, "bytes_from_target", down)
	return err
}

// parseRate reads 100MB, 100MiB, 1GB, 512KiB or a plain number of bytes.
func parseRate(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "/s")
	units := []struct {
		suffix string
		mult   float64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"b", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q: want bytes per second such as 100MB or 0", v)
	}
	return int64(f * mult), nil
}

// requireLoopback rejects addresses whose host is not a loopback IP or
// "localhost".
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q is not on loopback (127.0.0.0/8, ::1, localhost)", addr)
}
