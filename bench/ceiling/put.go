package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// put uploads size bytes of deterministic data from memory as one
// multipart upload of c.chunk parts, c.parallel in flight: the most a
// client can upload here, which a mount writing a file should approach.
// The data is made and hashed before the clock starts.
func put(ctx context.Context, w store.Writer, c config, size int64, keep bool, opts store.PutOptions) (result, error) {
	if c.chunk < store.MinPartSize {
		return result{}, fmt.Errorf("--chunk %d is below S3's minimum part size of 5 MiB", c.chunk)
	}
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(c.seed, 0x7075740a))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	sum := sha256.Sum256(data)
	n := int((size + c.chunk - 1) / c.chunk)
	var requests atomic.Int64
	start, cpu := time.Now(), cpuSeconds()
	up, err := w.StartUpload(ctx, c.bucket, c.key)
	if err != nil {
		return result{}, err
	}
	err = store.PutParts(ctx, counted{up, &requests}, c.parallel, n, func(num int) (io.ReaderAt, int64) {
		off := int64(num-1) * c.chunk
		end := min(off+c.chunk, size)
		return bytes.NewReader(data[off:end]), end - off
	})
	completing := time.Now()
	if err == nil {
		_, err = up.Complete(ctx, n, opts)
	}
	elapsed, cpu := time.Since(start), cpuSeconds()-cpu
	if err != nil {
		_ = up.Abort(context.WithoutCancel(ctx))
		return result{}, err
	}
	if !keep {
		if err := w.Delete(ctx, c.bucket, c.key); err != nil {
			return result{}, fmt.Errorf("deleting the uploaded object: %w", err)
		}
	}
	return result{Mode: "put", Bytes: size, Seconds: elapsed.Seconds(), Requests: requests.Load() + 2, SHA256: hex.EncodeToString(sum[:]), CPUSeconds: cpu,
		CompleteSeconds: time.Since(completing).Seconds() - time.Since(start.Add(elapsed)).Seconds()}, nil
}

// counted counts the parts sent.
type counted struct {
	store.Upload
	n *atomic.Int64
}

func (c counted) PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error {
	c.n.Add(1)
	return c.Upload.PutPart(ctx, num, body, size)
}
