package fusefs

import (
	"bytes"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/cache"
)

// A READ reply across two cached blocks is written as two slices (one
// writev, no copy); Bytes, which go-fuse uses when it cannot write
// slices, joins them into the buffer it passes.
func TestReadResult(t *testing.T) {
	tests := []struct {
		name       string
		head, tail []byte
		want       string
		slices     int
	}{
		{name: "one piece", head: []byte("abcdef"), want: "abcdef", slices: 1},
		{name: "two pieces", head: []byte("abc"), tail: []byte("def"), want: "abcdef", slices: 2},
		{name: "empty", head: []byte{}, want: "", slices: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReadResult(tt.head, tt.tail, cache.Hold{})
			defer r.Done()
			if r.Size() != len(tt.want) {
				t.Errorf("Size = %d, want %d", r.Size(), len(tt.want))
			}
			s, st := r.Slices()
			if st != fuse.OK || len(s) != tt.slices || string(bytes.Join(s, nil)) != tt.want {
				t.Errorf("Slices = %q, %v; want %d slices of %q", s, st, tt.slices, tt.want)
			}
			b, st := r.Bytes(make([]byte, len(tt.want)))
			if st != fuse.OK || string(b) != tt.want {
				t.Errorf("Bytes = %q, %v; want %q", b, st, tt.want)
			}
		})
	}
}
