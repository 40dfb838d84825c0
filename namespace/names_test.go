package namespace

import (
	"strings"
	"testing"
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
