package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// randomSpec is one --random BUCKET/KEY:SIZE argument.
type randomSpec struct {
	bucket, key string
	size        int64
}

func parseRandomSpec(v string) (randomSpec, error) {
	obj, sizeStr, ok := cutLast(v, ":")
	if !ok {
		return randomSpec{}, fmt.Errorf("%q: want BUCKET/KEY:SIZE", v)
	}
	bucket, key, ok := strings.Cut(obj, "/")
	if !ok || bucket == "" || key == "" {
		return randomSpec{}, fmt.Errorf("%q: want BUCKET/KEY:SIZE", v)
	}
	size, err := parseSize(sizeStr)
	if err != nil {
		return randomSpec{}, fmt.Errorf("%q: %w", v, err)
	}
	return randomSpec{bucket: bucket, key: key, size: size}, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// sizeUnits are checked in order, so longer suffixes come first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// parseSize parses sizes such as 1GiB, 256MiB, 10KiB, 1.5GiB or 1234.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 || (n > 0 && mult > (1<<62)/n) {
			return 0, fmt.Errorf("size %q out of range", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q (want e.g. 1GiB, 256MiB, 10KiB, 1234)", s)
	}
	return int64(f * float64(mult)), nil
}

// randomReader is an io.ReaderAt over size pseudo-random bytes: the AES-CTR
// keystream under a key derived from the object key. CTR mode can start at
// any 16-byte block, so any range is computed on demand and a 1 GiB object
// never sits in memory.
type randomReader struct {
	block cipher.Block
	size  int64
}

func newRandomReader(key string, size int64) *randomReader {
	k := sha256.Sum256([]byte("bucketfs s3seed\x00" + key))
	b, err := aes.NewCipher(k[:16])
	if err != nil {
		panic(err) // a 16-byte key cannot fail
	}
	return &randomReader{block: b, size: size}
}

func (r *randomReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.size-off))
	var iv [aes.BlockSize]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(off/aes.BlockSize))
	stream := cipher.NewCTR(r.block, iv[:])
	if skip := int(off % aes.BlockSize); skip > 0 {
		var scratch [aes.BlockSize]byte
		stream.XORKeyStream(scratch[:skip], scratch[:skip])
	}
	clear(p[:n])
	stream.XORKeyStream(p[:n], p[:n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
