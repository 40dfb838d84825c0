package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store/s3"
)

// writer returns a store on the test server that uploads objects larger
// than 16 MiB in parts, so they get multipart ETags ("MD5-N").
func (s *suite) writer() *s3.Store {
	cfg := aws.Config{
		Region:      s.region,
		HTTPClient:  awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
	}
	return s3.New(cfg, s3.Options{Endpoint: s.endpoint, PathStyle: true})
}

// TestChangingObjects: objects overwritten, replaced by another size
// (multipart uploads among them) or deleted while a file is open and being
// read. Through the open descriptor every read returns the opened
// version's bytes or fails with ESTALE; a new open sees the new object.
func TestChangingObjects(t *testing.T) {
	s := need(t)
	w := s.writer()
	const mib = 1 << 20
	tests := []struct {
		name          string
		size, newSize int // newSize < 0: deleted
	}{
		{"multipart replaced by smaller single part", 20 * mib, 3 * mib},
		{"single part replaced by larger multipart", 4 * mib, 20 * mib},
		{"multipart overwritten, same size", 20 * mib, 20 * mib},
		{"multipart deleted", 20 * mib, -1},
	}
	bkt := s.bucket("changing")
	if err := w.CreateBucket(context.Background(), bkt); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	// A cache of one block: reads after the change go to the server,
	// pinned to the opened ETag.
	mp := s.mount(t, "s3://"+bkt, "--metadata-ttl", ttl.String(), "--cache-size", "1MiB")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			key := "obj" + string(rune('a'+i)) + ".bin"
			oldData := pseudoRandom(uint64(100+i), tc.size)
			put := func(data []byte) string {
				o, err := w.Put(ctx, bkt, key, bytes.NewReader(data), int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("put %d bytes, ETag %s", len(data), o.ETag)
				if (len(data) > 16*mib) != strings.Contains(o.ETag, "-") {
					t.Errorf("ETag %q of a %d-byte upload: want a multipart ETag exactly above 16 MiB", o.ETag, len(data))
				}
				return o.ETag
			}
			put(oldData)
			time.Sleep(2 * ttl) // the mount forgets "no such file"
			p := filepath.Join(mp, key)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const chunk = 256 << 10
			buf := make([]byte, chunk)
			if n, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf[:n], oldData[:chunk]) {
				t.Fatalf("first read: %d bytes, %v", n, err)
			}

			var newData []byte
			if tc.newSize < 0 {
				if err := w.Delete(ctx, bkt, key); err != nil {
					t.Fatal(err)
				}
			} else {
				newData = pseudoRandom(uint64(200+i), tc.newSize)
				put(newData)
			}

			stale := 0
			reads := 0
			for off := int64(mib); off < int64(tc.size); off += 2 * mib {
				reads++
				n, err := f.ReadAt(buf, off)
				if err != nil && !errors.Is(err, io.EOF) {
					if !errors.Is(err, syscall.ESTALE) {
						t.Errorf("read at %d of the old descriptor: %v, want old bytes or ESTALE", off, err)
					}
					stale++
					continue
				}
				want := oldData[off:min(off+chunk, int64(tc.size))]
				switch {
				case bytes.Equal(buf[:n], want):
				case newData != nil && off+int64(n) <= int64(len(newData)) && bytes.Equal(buf[:n], newData[off:off+int64(n)]):
					t.Errorf("read at %d of the old descriptor returned bytes of the new version", off)
				default:
					t.Errorf("read at %d of the old descriptor: %d bytes that are not the old version's", off, n)
				}
			}
			t.Logf("old descriptor: %d of %d reads ESTALE, the rest old bytes", stale, reads)
			if stale == 0 {
				t.Errorf("no read of the old descriptor failed, though the 1 MiB cache cannot hold the old version")
			}

			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := os.ReadFile(p)
				switch {
				case tc.newSize < 0 && errors.Is(err, syscall.ENOENT):
					return
				case err == nil && newData != nil && bytes.Equal(got, newData):
					return
				case err == nil && bytes.Equal(got, oldData):
				case errors.Is(err, syscall.ESTALE):
				case err != nil:
					t.Fatalf("new open: %v", err)
				default:
					t.Fatalf("new open read %d bytes that are neither version", len(got))
				}
				if time.Now().After(deadline) {
					t.Fatalf("a new open still does not see the change 10s after it (--metadata-ttl %v): %v", ttl, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
