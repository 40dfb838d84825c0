package namespace

import (
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

func TestUsable(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"data.csv", true},
		{"sp ace", true},
		{"ünï", true},
		{"tab\there", true},
		{"trailing.", true},
		{"...", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("x", 256), false},
		{"nul\x00byte", false},
		{"a/b", false},
		{"bad\xffutf8", false},
	}
	for _, tt := range tests {
		if got := usable(tt.name); got != tt.want {
			t.Errorf("usable(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidBucketName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"my-bucket", true},
		{"data.example.com", true},
		{"abc", true},
		{"Legacy_Bucket", true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{".Trash", false},
		{"-dash", false},
		{"has space", false},
		{"desktop.ini", true},
	}
	for _, tt := range tests {
		if got := validBucketName(tt.name); got != tt.want {
			t.Errorf("validBucketName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestInoStable(t *testing.T) {
	a := Ino("b", "k", false)
	if a != Ino("b", "k", false) {
		t.Error("inode numbers differ for the same name")
	}
	if a == Ino("b", "k", true) || a == Ino("b2", "k", false) || a == Ino("b", "k2", false) {
		t.Error("inode numbers collide for different names or kinds")
	}
	if a <= 1 || a >= 1<<63 {
		t.Errorf("inode %d outside [2, 2^63)", a)
	}
}

// TestInoSameAsFNV: the inode numbers are those of hash/fnv's 64-bit FNV-1a
// over bucket, 0, key (and 1 for a directory), a file's key followed by
// 0, ETag, 0, size (and 0, mtime without an ETag), as they were when
// built from strings: they did not change with the allocation-free form.
func TestInoSameAsFNV(t *testing.T) {
	want := func(bucket, key string, dir bool) uint64 {
		h := fnv.New64a()
		h.Write([]byte(bucket + "\x00" + key))
		if dir {
			h.Write([]byte{1})
		}
		return h.Sum64()>>1 | 2
	}
	at := time.Unix(1_700_000_123, 0)
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"file name", Ino("bkt", "a/b.csv", false), want("bkt", "a/b.csv", false)},
		{"directory", Ino("bkt", "a", true), want("bkt", "a", true)},
		{"empty", Ino("", "", false), want("", "", false)},
		{"version", FileIno("bkt", store.Object{Key: "k", ETag: `"abc"`, Size: 1234, ModTime: at}),
			want("bkt", "k\x00\"abc\"\x001234", false)},
		{"version without ETag", FileIno("bkt", store.Object{Key: "k", Size: 0, ModTime: at}),
			want("bkt", "k\x00\x000\x001700000123", false)},
		{"negative mtime", FileIno("bkt", store.Object{Key: "k", Size: 7, ModTime: time.Unix(-5, 0)}),
			want("bkt", "k\x00\x007\x00-5", false)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}
