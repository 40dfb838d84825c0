package s3

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
)

// TestMultipartCopy takes the UploadPartCopy path (objects above 5 GiB)
// with small objects, by lowering the threshold.
func TestMultipartCopy(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	s := newTestStore(t, endpoint, access, secret)
	reachable(t, s, endpoint)
	bucket := newBucket(t, s)
	oldMax, oldPart := copyMax, copyPartSize
	copyMax, copyPartSize = 10<<20, 5<<20
	t.Cleanup(func() { copyMax, copyPartSize = oldMax, oldPart })

	data := make([]byte, 12<<20+123) // three parts, the last short
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	src, err := s.Put(t.Context(), bucket, "src/big.bin", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Copy(t.Context(), bucket, "src/big.bin", src.ETag, "dst/big copy.bin")
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if o.Size != int64(len(data)) {
		t.Errorf("Copy size %d, want %d", o.Size, len(data))
	}
	rc, err := s.ReadRange(t.Context(), bucket, "dst/big copy.bin", "", 0, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("multipart copy has other bytes")
	}
}
