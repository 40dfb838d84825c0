package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// writeFile writes size bytes of data drawn from seed to path, bufSize
// bytes per write, and times the open, the writes and the close together:
// a mount that uploads on close is done only when close returns. The data
// is made and hashed before the clock starts.
func writeFile(path string, size int64, bufSize int, seed uint64) (result, error) {
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 0x77726974))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	sum := sha256.Sum256(data)
	start := time.Now()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return result{}, err
	}
	for off := int64(0); off < size; off += int64(bufSize) {
		if _, err := f.Write(data[off:min(off+int64(bufSize), size)]); err != nil {
			f.Close()
			return result{}, fmt.Errorf("write at %d: %w", off, err)
		}
	}
	if err := f.Close(); err != nil {
		return result{}, fmt.Errorf("close (the upload): %w", err)
	}
	elapsed := time.Since(start)
	return result{Bytes: size, Seconds: elapsed.Seconds(), SHA256: []string{hex.EncodeToString(sum[:])}}, nil
}
