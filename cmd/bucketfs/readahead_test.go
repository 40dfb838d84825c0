package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const info = `22 1 0:21 / /proc rw,nosuid - proc proc rw
98 22 0:55 / /mnt/s3 rw,nosuid,nodev,relatime - fuse.bucketfs s3:// rw,user_id=0,group_id=0
99 22 0:56 / /mnt/my\040data rw - fuse.bucketfs s3://b/p rw
100 22 0:57 / /mnt/s3 rw - tmpfs tmpfs rw
`
	tests := []struct {
		mp     string
		fstype string
		dev    string
	}{
		{"/mnt/my data", "fuse.bucketfs", "0:56"},
		{"/mnt/s3", "tmpfs", "0:57"}, // mounted over: the last one is visible
		{"/proc", "proc", "0:21"},
		{"/nowhere", "", ""},
	}
	for _, tc := range tests {
		got, err := parseMountinfo(strings.NewReader(info), tc.mp)
		if err != nil || got.fstype != tc.fstype || got.dev != tc.dev {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want %s %s", tc.mp, got, err, tc.fstype, tc.dev)
		}
	}
}

func TestSetReadAhead(t *testing.T) {
	old := bdiDir
	bdiDir = t.TempDir()
	defer func() { bdiDir = old }()
	write := func(dev, v string) string {
		p := filepath.Join(bdiDir, dev, "read_ahead_kb")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, dev, start, want string
		wantErr                bool
	}{
		{"raised from the default", "0:55", "128\n", "4096\n", false},
		{"never lowered", "0:56", "8192\n", "8192\n", false},
		{"missing device", "0:99", "", "", true},
		{"path in the device", "../0:55", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p string
			if tc.start != "" {
				p = write(tc.dev, tc.start)
			}
			err := setReadAhead(tc.dev, 4096)
			if (err != nil) != tc.wantErr {
				t.Fatalf("setReadAhead = %v, want error %v", err, tc.wantErr)
			}
			if p != "" {
				if got, _ := os.ReadFile(p); string(got) != tc.want {
					t.Errorf("read_ahead_kb = %q, want %q", got, tc.want)
				}
			}
		})
	}
}
