package main

import (
	"bytes"
	"context"
	"testing"
)

// TestRead checks the replies fusefloor sends: the pattern's bytes at the
// offset, in two slices where a read wraps around the pattern's end, and
// short at the end of the file.
func TestRead(t *testing.T) {
	data := make([]byte, pattern)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f := &file{size: pattern + 300, data: data}
	want := func(off, n int64) []byte {
		var b []byte
		for i := off; i < off+n; i++ {
			b = append(b, byte(i%pattern*7))
		}
		return b
	}
	tests := []struct {
		name         string
		off, n, want int64
		slices       int
	}{
		{"start", 0, 4096, 4096, 1},
		{"inside", 12345, 1 << 20, 1 << 20, 1},
		{"wraps around the pattern", pattern - 100, 200, 200, 2},
		{"short at the end", pattern + 200, 4096, 100, 1},
		{"at the end", pattern + 300, 4096, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, errno := f.Read(context.Background(), nil, make([]byte, tt.n), tt.off)
			if errno != 0 {
				t.Fatal(errno)
			}
			if res.Size() != int(tt.want) {
				t.Fatalf("size %d, want %d", res.Size(), tt.want)
			}
			got, _ := res.Bytes(make([]byte, tt.n))
			if !bytes.Equal(got, want(tt.off, tt.want)) {
				t.Fatal("bytes differ from the pattern")
			}
			if s, ok := res.(slices); ok {
				v, _ := s.Slices()
				if len(v) != tt.slices {
					t.Fatalf("%d slices, want %d", len(v), tt.slices)
				}
			}
		})
	}
}
