// Command faultproxyd runs a faultproxy.Proxy until interrupted, for
// scripts (scripts/soak). It prints the proxy's URL on its first line of
// stdout and its counters on every SIGUSR1 and on exit.
//
//	faultproxyd --target http://127.0.0.1:7070 --rate 0.1 --seed 1 --stall 3s
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/internal/faultproxy"
)

func main() {
	target := flag.String("target", "", "S3 server `URL` on a loopback address")
	rate := flag.Float64("rate", 0.1, "share of requests that get a fault")
	seed := flag.Uint64("seed", 1, "seed of the fault decisions")
	stall := flag.Duration("stall", 3*time.Second, "how long a stall fault stops a body")
	kinds := flag.String("kinds", "", "comma-separated faults to choose from (slowdown, internal-error, reset, truncate, stall); default all")
	flag.Parse()
	cfg := faultproxy.Config{Target: *target, Rate: *rate, Seed: *seed, StallFor: *stall}
	if *kinds != "" {
		for _, k := range strings.Split(*kinds, ",") {
			kind, err := faultproxy.ParseKind(strings.TrimSpace(k))
			if err != nil {
				fmt.Fprintln(os.Stderr, "faultproxyd:", err)
				os.Exit(2)
			}
			cfg.Kinds = append(cfg.Kinds, kind)
		}
	}
	p, err := faultproxy.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultproxyd:", err)
		os.Exit(1)
	}
	fmt.Println(p.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	for s := range sig {
		fmt.Println(p.Stats())
		if s != syscall.SIGUSR1 {
			break
		}
	}
	p.Close()
}
