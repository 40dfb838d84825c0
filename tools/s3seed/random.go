package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"github.com/bucketfs/bucketfs/internal/units"
	"io"
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
	size, err := units.ParseSize(sizeStr)
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
