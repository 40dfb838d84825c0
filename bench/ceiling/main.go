// Command ceiling fetches one object straight through the project's S3 store
// (store/s3 over aws-sdk-go-v2), without FUSE, to show what the network and
// server allow: the figure a mount should approach.
//
//	ceiling --endpoint-url URL --path-style --bucket B --key K
//	        [--mode seq|random|ttfb] [--parallel 16] [--chunk 8MiB]
//	        [--count 200] [--size 256KiB] [--seed 1]
//
//	seq     the whole object as --parallel concurrent ranged GETs of --chunk
//	        bytes into memory; the SHA-256 is computed after the clock stops
//	random  --count reads of --size bytes at random aligned offsets, one at a
//	        time (what a program doing random reads waits for)
//	ttfb    with a fresh client: HeadObject, then the first byte
//	put     uploads --put-size bytes of deterministic data from memory as a
//	        multipart upload of --chunk parts, --parallel at a time, then
//	        deletes the object (--keep leaves it); the SHA-256 is of the data
//
// It prints one JSON object on stdout: mode, bytes, seconds, mib_s, requests,
// cpu_s (the process's user+system time while timed) and (seq) sha256.
// Credentials come from the environment as for bucketfs (auth.Load); the
// region defaults to us-east-1 so no instance metadata is asked.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/bucketfs/bucketfs/internal/units"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/auth"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/s3"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "ceiling: %v\n", err)
		os.Exit(1)
	}
}

// result is the JSON line printed.
type result struct {
	Mode     string  `json:"mode"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MiBs     float64 `json:"mib_s"`
	Requests int64   `json:"requests"`
	SHA256   string  `json:"sha256,omitempty"`
	// CompleteSeconds is the part of Seconds spent completing a
	// multipart upload (put).
	CompleteSeconds float64 `json:"complete_seconds,omitempty"`
	// CPUSeconds is the user+system time the process spent during the
	// timed part (seq, random, put): the client's own cost of the bytes,
	// to set beside a mount daemon's.
	CPUSeconds float64 `json:"cpu_s"`
}

// cpuSeconds is the user+system time the process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// reader is the part of the store the benchmark uses; tests pass a fake.
type reader interface {
	ReadAt(ctx context.Context, bucket, key, etag string, p []byte, off int64) (int, error)
}

type config struct {
	bucket, key string
	parallel    int
	chunk       int64
	count       int
	size        int64
	seed        uint64
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	fl.SetOutput(stderr)
	endpoint := fl.String("endpoint-url", "", "S3 endpoint URL")
	pathStyle := fl.Bool("path-style", false, "path-style bucket addressing")
	region := fl.String("region", "us-east-1", "region to sign for")
	mode := fl.String("mode", "seq", "seq, random, ttfb or put")
	putSize := fl.String("put-size", "1GiB", "bytes to upload (put)")
	keep := fl.Bool("keep", false, "keep the uploaded object (put)")
	ifAbsent := fl.Bool("if-absent", false, "complete with If-None-Match: * (put), as a mount creating a file does")
	var c config
	fl.StringVar(&c.bucket, "bucket", "", "bucket (required)")
	fl.StringVar(&c.key, "key", "", "object key (required)")
	fl.IntVar(&c.parallel, "parallel", 16, "concurrent GETs (seq)")
	chunk := fl.String("chunk", "8MiB", "bytes per GET (seq)")
	fl.IntVar(&c.count, "count", 200, "number of reads (random)")
	size := fl.String("size", "256KiB", "bytes per read (random)")
	fl.Uint64Var(&c.seed, "seed", 1, "random offsets seed (random)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var err error
	if c.chunk, err = units.ParseSize(*chunk); err != nil {
		return err
	}
	if c.size, err = units.ParseSize(*size); err != nil {
		return err
	}
	if c.bucket == "" || c.key == "" || c.parallel < 1 || c.chunk < 1 || c.count < 1 || c.size < 1 {
		fl.Usage()
		return errors.New("want --bucket, --key and positive --parallel, --chunk, --count, --size")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	newStore := func() (*s3.Store, error) {
		res, err := auth.Load(ctx, auth.Options{EndpointURL: *endpoint, Region: *region, MaxConns: 2 * c.parallel})
		if err != nil {
			return nil, errors.New(auth.Explain(err))
		}
		return s3.New(res.Config, s3.Options{Endpoint: res.Endpoint, PathStyle: *pathStyle}), nil
	}
	st, err := newStore()
	if err != nil {
		return err
	}

	var res result
	switch *mode {
	case "seq", "random":
		// One HEAD for size and ETag, outside the timed part.
		obj, err := st.Stat(ctx, c.bucket, c.key)
		if err != nil {
			return err
		}
		cr := &countingReader{r: st}
		if *mode == "seq" {
			res, err = sequential(ctx, cr, c, obj.ETag, obj.Size)
		} else {
			res, err = random(ctx, cr, c, obj.ETag, obj.Size)
		}
		if err != nil {
			return err
		}
		res.Requests = cr.n.Load()
	case "put":
		n, err := units.ParseSize(*putSize)
		if err != nil {
			return err
		}
		if res, err = put(ctx, st, c, n, *keep, store.PutOptions{IfAbsent: *ifAbsent}); err != nil {
			return err
		}
	case "ttfb":
		start := time.Now()
		obj, err := st.Stat(ctx, c.bucket, c.key)
		if err != nil {
			return err
		}
		if _, err := st.ReadAt(ctx, c.bucket, c.key, obj.ETag, make([]byte, 1), 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		res = result{Mode: "ttfb", Bytes: 1, Seconds: time.Since(start).Seconds(), Requests: 2}
	default:
		return fmt.Errorf("--mode %q: want seq, random, ttfb or put", *mode)
	}
	if res.Seconds > 0 {
		res.MiBs = float64(res.Bytes) / (1 << 20) / res.Seconds
	}
	return json.NewEncoder(stdout).Encode(res)
}

type countingReader struct {
	r reader
	n atomic.Int64
}

func (c *countingReader) ReadAt(ctx context.Context, bucket, key, etag string, p []byte, off int64) (int, error) {
	c.n.Add(1)
	return c.r.ReadAt(ctx, bucket, key, etag, p, off)
}

// sequential fetches [0,size) into one buffer with c.parallel workers taking
// c.chunk-sized ranges in order. The buffer is allocated and touched before
// the clock starts, and hashed after it stops, so the figure is the network's.
func sequential(ctx context.Context, r reader, c config, etag string, size int64) (result, error) {
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start, cpu := time.Now(), cpuSeconds()
	for w := 0; w < c.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				off := next.Add(c.chunk) - c.chunk
				if off >= size || ctx.Err() != nil {
					return
				}
				p := buf[off:min(off+c.chunk, size)]
				n, err := r.ReadAt(ctx, c.bucket, c.key, etag, p, off)
				if err == nil && n < len(p) || err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("range at %d: %w", off, err)
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuSeconds()-cpu
	if firstErr != nil {
		return result{}, firstErr
	}
	sum := sha256.Sum256(buf)
	return result{Mode: "seq", Bytes: size, Seconds: elapsed.Seconds(), SHA256: hex.EncodeToString(sum[:]), CPUSeconds: cpu}, nil
}

// random reads c.count blocks of c.size bytes at offsets that are multiples
// of c.size, one after another, from a seeded generator.
func random(ctx context.Context, r reader, c config, etag string, size int64) (result, error) {
	blocks := size / c.size
	if blocks < 1 {
		return result{}, fmt.Errorf("object of %d bytes is smaller than --size %d", size, c.size)
	}
	rng := rand.New(rand.NewPCG(c.seed, 0x62756b6574))
	p := make([]byte, c.size)
	var total int64
	start, cpu := time.Now(), cpuSeconds()
	for i := 0; i < c.count; i++ {
		off := rng.Int64N(blocks) * c.size
		n, err := r.ReadAt(ctx, c.bucket, c.key, etag, p, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return result{}, err
		}
		total += int64(n)
	}
	return result{Mode: "random", Bytes: total, Seconds: time.Since(start).Seconds(), CPUSeconds: cpuSeconds() - cpu}, nil
}
