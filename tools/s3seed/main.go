// Command s3seed puts sample data on an S3 server for the project's scripts
// and tests.
//
//	go run ./tools/s3seed --endpoint-url URL [--path-style] [--region R] \
//	    [--random BUCKET/KEY:SIZE ...] [DIR]
//
// Every top-level subdirectory of DIR becomes a bucket (created if missing)
// and every regular file below it an object keyed by its relative path;
// empty directories become "dir/" marker objects. Each --random spec uploads
// SIZE deterministic pseudo-random bytes (the same KEY always gives the same
// bytes) and prints "KEY SHA256" for it. Credentials come from
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/s3"
)

// concurrency is how many files upload at once: enough to hide per-request
// latency for thousands of small files.
const concurrency = 16

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "s3seed: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("s3seed", flag.ContinueOnError)
	fl.SetOutput(stderr)
	endpoint := fl.String("endpoint-url", "", "S3 endpoint URL (default: AWS for the region)")
	pathStyle := fl.Bool("path-style", false, "use path-style bucket addressing")
	region := fl.String("region", "", "region (default: $AWS_REGION, else us-east-1)")
	var randoms []randomSpec
	fl.Func("random", "upload pseudo-random bytes: BUCKET/KEY:SIZE, e.g. big/data.bin:1GiB (repeatable)", func(v string) error {
		spec, err := parseRandomSpec(v)
		if err == nil {
			randoms = append(randoms, spec)
		}
		return err
	})
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: s3seed --endpoint-url URL [--path-style] [--region R] [--random BUCKET/KEY:SIZE ...] [DIR]")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fl.NArg() > 1 || (fl.NArg() == 0 && len(randoms) == 0) {
		fl.Usage()
		return errors.New("want one DIR and/or --random specs")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := newStore(ctx, *endpoint, *region, *pathStyle)
	if err != nil {
		return err
	}
	if dir := fl.Arg(0); dir != "" {
		start := time.Now()
		n, err := seedDir(ctx, st, dir, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "s3seed: uploaded %d objects from %s in %v\n", n, dir, time.Since(start).Round(time.Millisecond))
	}
	for _, spec := range randoms {
		sum, err := seedRandom(ctx, st, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", spec.key, sum)
	}
	return nil
}

// newStore builds the S3 client from environment credentials only, so a
// seeding run never wanders off to shared files or instance metadata.
func newStore(ctx context.Context, endpoint, region string, pathStyle bool) (*s3.Store, error) {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return nil, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.New(cfg, s3.Options{Endpoint: endpoint, PathStyle: pathStyle}), nil
}

// upload is one object to create from a local file; path "" means an empty
// directory marker.
type upload struct {
	bucket, key, path string
}

// plan walks dir and returns the buckets to create and the objects to put.
func plan(dir string, warn io.Writer) (buckets []string, uploads []upload, err error) {
	top, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range top {
		if !e.IsDir() {
			fmt.Fprintf(warn, "s3seed: skipping %s: only directories can become buckets\n", filepath.Join(dir, e.Name()))
			continue
		}
		bucket := e.Name()
		buckets = append(buckets, bucket)
		root := filepath.Join(dir, bucket)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			key := filepath.ToSlash(rel)
			switch {
			case d.IsDir():
				if path == root {
					return nil
				}
				entries, err := os.ReadDir(path)
				if err != nil {
					return err
				}
				if len(entries) == 0 {
					uploads = append(uploads, upload{bucket: bucket, key: key + "/"})
				}
			case d.Type().IsRegular():
				uploads = append(uploads, upload{bucket: bucket, key: key, path: path})
			default:
				fmt.Fprintf(warn, "s3seed: skipping %s: not a regular file\n", path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return buckets, uploads, nil
}

// seedDir uploads the tree under dir, concurrency files at a time, and
// returns the number of objects written. The first failure stops the rest.
func seedDir(ctx context.Context, w store.Writer, dir string, warn io.Writer) (int, error) {
	buckets, uploads, err := plan(dir, warn)
	if err != nil {
		return 0, err
	}
	for _, b := range buckets {
		if err := w.CreateBucket(ctx, b); err != nil {
			return 0, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan upload)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				if err := putFile(ctx, w, u); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, u := range uploads {
		select {
		case work <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return 0, firstErr
	}
	return len(uploads), nil
}

func putFile(ctx context.Context, w store.Writer, u upload) error {
	if u.path == "" {
		_, err := store.Put(ctx, w, u.bucket, u.key, strings.NewReader(""), 0)
		return err
	}
	f, err := os.Open(u.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, w, u.bucket, u.key, f, fi.Size())
	return err
}

// seedRandom uploads the bytes of spec and returns their hex SHA-256.
func seedRandom(ctx context.Context, w store.Writer, spec randomSpec) (string, error) {
	if err := w.CreateBucket(ctx, spec.bucket); err != nil {
		return "", err
	}
	r := newRandomReader(spec.key, spec.size)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, spec.size)); err != nil {
		return "", err
	}
	if _, err := store.Put(ctx, w, spec.bucket, spec.key, r, spec.size); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
