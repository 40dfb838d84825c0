package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReplaceWhileOpen: an object replaced while a file is open. Reads from
// the open file return the old bytes or fail with ESTALE, never a mix of the
// two versions; a new open after the metadata TTL sees the new content.
func TestReplaceWhileOpen(t *testing.T) {
	s := need(t)
	tests := []struct {
		name  string
		flags []string
	}{
		// The whole object fits in the data cache: old bytes come from there.
		{"default cache", nil},
		// Most reads after the replace must go to the server, pinned to the
		// old ETag: they have to fail rather than return new bytes.
		{"cache smaller than the object", []string{"--cache-size", "1MiB"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replaceWhileOpen(t, s, s.bucket(fmt.Sprintf("replace%d", i)), tc.flags)
		})
	}
}

func replaceWhileOpen(t *testing.T, s *suite, bkt string, flags []string) {
	const key, size, chunk = "data/obj.bin", 8 << 20, 1 << 20
	oldData, newData := pseudoRandom(10, size), pseudoRandom(20, size)
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {key: oldData}})

	const ttl = time.Second
	mp := s.mount(t, "s3://"+bkt, append([]string{"--metadata-ttl", ttl.String()}, flags...)...)
	p := filepath.Join(mp, filepath.FromSlash(key))

	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, chunk)
	if n, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf[:n], oldData[:chunk]) {
		t.Fatalf("first read: %d bytes, %v, matches old content: %v", n, err, bytes.Equal(buf[:n], oldData[:n]))
	}

	// Same size on purpose: only the bytes can tell the versions apart.
	if err := s.s3.put(context.Background(), bkt, key, newData); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*ttl + 500*time.Millisecond)

	// Read the rest, then the start again, through the old descriptor.
	offsets := []int64{}
	for off := int64(chunk); off < size; off += chunk {
		offsets = append(offsets, off)
	}
	offsets = append(offsets, 0)
	stale := 0
	for _, off := range offsets {
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			if !errors.Is(err, syscall.ESTALE) {
				t.Errorf("read at %d through the old descriptor: %v, want old bytes or ESTALE", off, err)
			}
			stale++
			continue
		}
		got := buf[:n]
		switch {
		case n != chunk:
			t.Errorf("read at %d: %d bytes, want %d", off, n, chunk)
		case bytes.Equal(got, oldData[off:off+int64(n)]):
		case bytes.Equal(got, newData[off:off+int64(n)]):
			t.Errorf("read at %d through the descriptor opened on the old object returned new bytes: a mix of versions", off)
		default:
			t.Errorf("read at %d returned bytes of neither version", off)
		}
	}
	t.Logf("old descriptor: %d of %d reads failed with ESTALE, the rest returned old bytes", stale, len(offsets))

	// A new open sees the new content. The kernel's attribute cache may lag
	// the TTL a little, so poll briefly; every read must be one whole version.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read after replace: %v", err)
		}
		if bytes.Equal(got, newData) {
			break
		}
		if !bytes.Equal(got, oldData) {
			t.Fatalf("new open read %d bytes that are neither version", len(got))
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new open still reads the old content %v after the replace (--metadata-ttl %v)", 2*ttl+5*time.Second, ttl)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
