// Command readbench reads files the way the benchmark's workloads need and
// times only the reading. coreutils' sha256sum runs at ~350 MB/s on the bench
// machine, slower than the mounts it would measure; Go's SHA-256 uses the
// CPU's SHA instructions (~1.2 GB/s). Time without --sha256, verify with it.
//
//	readbench seq [--sha256] [--buffer 1MiB] FILE[@OFF+LEN] ...
//	readbench random [--count 200] [--size 256KiB] [--seed 1] FILE
//	readbench write [--size 1GiB] [--buffer 1MiB] [--seed 1] FILE
//	readbench columnar [--parallel 8] [--footer 64KiB] [--chunk 512KiB] FILE...
//	readbench direct [--readers 1] [--buffer 1MiB] DIR
//
//	seq     reads every FILE (or the LEN bytes at OFF) sequentially, all of
//	        them at once, one goroutine each; --sha256 hashes while reading
//	        (the time then includes hashing) and prints each digest
//	random  --count preads of --size bytes at random offsets that are
//	        multiples of --size, one after another (the fallback when fio is
//	        not installed)
//	write   creates FILE and writes --size bytes of deterministic data into
//	        it sequentially, --buffer bytes per write call, then closes it;
//	        the time runs from the open to the end of close (on a mount of
//	        S3, the upload), and the SHA-256 printed is the data's
//	columnar reads each FILE as arrow and duckdb read Parquet: the last
//	        --footer bytes, then two --chunk ranges at different offsets,
//	        one pread each, --parallel files at a time in the order given
//	direct  reads every regular file under DIR whole with O_DIRECT (past
//	        the page cache), --readers files at a time: the disk's own
//	        speed on the files of a disk cache
//
// It prints one JSON object: bytes, seconds, mib_s and, with --sha256, the
// digests in argument order.
package main

import (
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
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "readbench: %v\n", err)
		os.Exit(1)
	}
}

type result struct {
	Bytes   int64    `json:"bytes"`
	Seconds float64  `json:"seconds"`
	MiBs    float64  `json:"mib_s"`
	SHA256  []string `json:"sha256,omitempty"`
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: readbench seq|random|write|columnar|direct [flags] FILE...")
	}
	fl := flag.NewFlagSet("readbench "+args[0], flag.ContinueOnError)
	fl.SetOutput(stderr)
	var res result
	switch args[0] {
	case "seq":
		hash := fl.Bool("sha256", false, "hash while reading and print each part's SHA-256")
		bufS := fl.String("buffer", "1MiB", "bytes per read call")
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		bufSize, err := units.ParseSize(*bufS)
		if err != nil || bufSize < 1 {
			return fmt.Errorf("--buffer %q: want a size like 1MiB", *bufS)
		}
		var parts []part
		for _, a := range fl.Args() {
			p, err := parsePart(a)
			if err != nil {
				return err
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			return errors.New("seq: want at least one FILE")
		}
		var sums []string
		if *hash {
			sums = make([]string, len(parts))
		}
		res, err = readAll(parts, int(bufSize), sums)
		if err != nil {
			return err
		}
		res.SHA256 = sums
	case "random":
		count := fl.Int("count", 200, "number of reads")
		sizeS := fl.String("size", "256KiB", "bytes per read")
		seed := fl.Uint64("seed", 1, "seed for the offsets")
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		size, err := units.ParseSize(*sizeS)
		if err != nil || size < 1 || *count < 1 || fl.NArg() != 1 {
			return errors.New("random: want one FILE, a positive --count and --size")
		}
		res, err = randomReads(fl.Arg(0), *count, size, *seed)
		if err != nil {
			return err
		}
	case "write":
		sizeS := fl.String("size", "1GiB", "bytes to write")
		bufS := fl.String("buffer", "1MiB", "bytes per write call")
		seed := fl.Uint64("seed", 1, "seed of the data")
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		size, err1 := units.ParseSize(*sizeS)
		bufSize, err2 := units.ParseSize(*bufS)
		if err1 != nil || err2 != nil || size < 0 || bufSize < 1 || fl.NArg() != 1 {
			return errors.New("write: want one FILE, a --size and a positive --buffer")
		}
		var err error
		if res, err = writeFile(fl.Arg(0), size, int(bufSize), *seed); err != nil {
			return err
		}
	case "columnar":
		parallel := fl.Int("parallel", 8, "files read at a time")
		footerS := fl.String("footer", "64KiB", "bytes read at the end of each file")
		chunkS := fl.String("chunk", "512KiB", "bytes of each of the two ranges read")
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		footer, err1 := units.ParseSize(*footerS)
		chunk, err2 := units.ParseSize(*chunkS)
		if err1 != nil || err2 != nil || footer < 1 || chunk < 1 || *parallel < 1 || fl.NArg() == 0 {
			return errors.New("columnar: want FILEs, a positive --parallel, --footer and --chunk")
		}
		var err error
		if res, err = columnar(fl.Args(), *parallel, footer, chunk); err != nil {
			return err
		}
	case "direct":
		readers := fl.Int("readers", 1, "files read at a time")
		bufS := fl.String("buffer", "1MiB", "bytes per read call (a multiple of 4 KiB)")
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		bufSize, err := units.ParseSize(*bufS)
		if err != nil || *readers < 1 || fl.NArg() != 1 {
			return errors.New("direct: want one DIR, a positive --readers and a --buffer")
		}
		if res, err = direct(fl.Arg(0), *readers, int(bufSize)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q: want seq, random, write, columnar or direct", args[0])
	}
	if res.Seconds > 0 {
		res.MiBs = float64(res.Bytes) / (1 << 20) / res.Seconds
	}
	return json.NewEncoder(stdout).Encode(res)
}

// part is a file or a byte range of one; length < 0 means to the end.
type part struct {
	path        string
	off, length int64
}

// parsePart reads FILE or FILE@OFF+LEN (sizes may carry units).
func parsePart(s string) (part, error) {
	i := strings.LastIndex(s, "@")
	if i < 0 {
		return part{path: s, length: -1}, nil
	}
	offS, lenS, ok := strings.Cut(s[i+1:], "+")
	if !ok {
		return part{}, fmt.Errorf("%q: want FILE@OFFSET+LENGTH", s)
	}
	off, err1 := units.ParseSize(offS)
	n, err2 := units.ParseSize(lenS)
	if err1 != nil || err2 != nil {
		return part{}, fmt.Errorf("%q: want FILE@OFFSET+LENGTH", s)
	}
	return part{path: s[:i], off: off, length: n}, nil
}

// readAll reads the parts concurrently. With sums non-nil it hashes each part
// into sums[i].
func readAll(parts []part, bufSize int, sums []string) (result, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	start := time.Now()
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h io.Writer = io.Discard
			hh := sha256.New()
			if sums != nil {
				h = hh
			}
			n, err := readPart(p, bufSize, h)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil {
				errs = append(errs, err)
			}
			if sums != nil {
				sums[i] = hex.EncodeToString(hh.Sum(nil))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	return result{Bytes: total, Seconds: elapsed.Seconds()}, nil
}

func readPart(p part, bufSize int, w io.Writer) (int64, error) {
	f, err := os.Open(p.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if p.off > 0 || p.length >= 0 {
		n := p.length
		if n < 0 {
			n = 1 << 62
		}
		r = io.NewSectionReader(f, p.off, n)
	}
	// Plain read calls of bufSize, like dd bs=: no ReaderFrom shortcuts.
	buf := make([]byte, bufSize)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			total += int64(n)
		}
		if errors.Is(err, io.EOF) {
			if p.length >= 0 && total != p.length {
				return total, fmt.Errorf("%s: read %d bytes at %d, want %d", p.path, total, p.off, p.length)
			}
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("%s: %w", p.path, err)
		}
	}
}

// randomReads preads count blocks of size bytes at seeded random offsets
// that are multiples of size.
func randomReads(path string, count int, size int64, seed uint64) (result, error) {
	f, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return result{}, err
	}
	blocks := fi.Size() / size
	if blocks < 1 {
		return result{}, fmt.Errorf("%s: %d bytes, smaller than one read of %d", path, fi.Size(), size)
	}
	rng := rand.New(rand.NewPCG(seed, 0x62756b6574))
	buf := make([]byte, size)
	var total int64
	start := time.Now()
	for i := 0; i < count; i++ {
		n, err := f.ReadAt(buf, rng.Int64N(blocks)*size)
		total += int64(n)
		if err != nil && !errors.Is(err, io.EOF) {
			return result{}, err
		}
	}
	return result{Bytes: total, Seconds: time.Since(start).Seconds()}, nil
}
