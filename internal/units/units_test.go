package units

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1G", 1 << 30, true},
		{"100M", 100 << 20, true},
		{"1.5GiB", 3 << 29, true},
		{"1.5KiB", 1536, true},
		{"1GB", 1e9, true},
		{"2MB", 2e6, true},
		{"64k", 64 << 10, true},
		{"7B", 7, true},
		{"4096", 4096, true},
		{"0", 0, true},
		{" 8 MiB ", 8 << 20, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"lots", 0, false},
		{"-1", 0, false},
		{"-1MiB", 0, false},
		{"12XB", 0, false},
		{"99999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{512 << 20, "512MiB"},
		{1 << 30, "1GiB"},
		{1536, "1536"},
		{3 << 29, "1536MiB"},
		{100, "100"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := ParseSize(FormatSize(tt.in)); err != nil || back != tt.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tt.in, back, err)
		}
	}
}
