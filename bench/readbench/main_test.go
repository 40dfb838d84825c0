package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tempFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	path := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRun(t *testing.T) {
	path, data := tempFile(t, 3<<20+5)
	tests := []struct {
		name      string
		args      []string
		wantBytes int64
		wantSums  []string
		wantErr   string
	}{
		{"whole file", []string{"seq", "--sha256", path}, int64(len(data)), []string{hexSum(data)}, ""},
		{"small buffer", []string{"seq", "--buffer", "4096", "--sha256", path}, int64(len(data)), []string{hexSum(data)}, ""},
		{"ranges at once", []string{"seq", "--sha256", path + "@0+1MiB", path + "@1MiB+2MiB"}, 3 << 20,
			[]string{hexSum(data[:1<<20]), hexSum(data[1<<20 : 3<<20])}, ""},
		{"no hash asked", []string{"seq", path}, int64(len(data)), nil, ""},
		{"range past the end", []string{"seq", path + "@3MiB+1MiB"}, 0, nil, "want 1048576"},
		{"missing file", []string{"seq", path + ".nope"}, 0, nil, "no such file"},
		{"random", []string{"random", "--count", "10", "--size", "64KiB", path}, 10 * 64 << 10, nil, ""},
		{"random read too big", []string{"random", "--size", "4MiB", path}, 0, nil, "smaller than one read"},
		{"columnar", []string{"columnar", "--parallel", "2", "--footer", "4KiB", "--chunk", "64KiB", path, path}, 2 * (4<<10 + 2*64<<10), nil, ""},
		{"columnar file too small", []string{"columnar", "--chunk", "2MiB", path}, 0, nil, "too small"},
		{"unknown mode", []string{"fast", path}, 0, nil, "unknown mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tc.args, &out, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var res result
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("output %q: %v", out.String(), err)
			}
			if res.Bytes != tc.wantBytes {
				t.Errorf("bytes = %d, want %d", res.Bytes, tc.wantBytes)
			}
			if strings.Join(res.SHA256, ",") != strings.Join(tc.wantSums, ",") {
				t.Errorf("sha256 = %v, want %v", res.SHA256, tc.wantSums)
			}
			if res.Seconds <= 0 || res.MiBs <= 0 {
				t.Errorf("seconds %v, mib_s %v: want both positive", res.Seconds, res.MiBs)
			}
		})
	}
}

func TestParsePart(t *testing.T) {
	tests := []struct {
		in   string
		want part
		bad  bool
	}{
		{"/m/a.bin", part{path: "/m/a.bin", length: -1}, false},
		{"/m/a.bin@256MiB+256MiB", part{path: "/m/a.bin", off: 256 << 20, length: 256 << 20}, false},
		{"/m/x@y/a.bin@0+10", part{path: "/m/x@y/a.bin", off: 0, length: 10}, false},
		{"/m/a.bin@10", part{}, true},
		{"/m/a.bin@a+b", part{}, true},
	}
	for _, tc := range tests {
		got, err := parsePart(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("parsePart(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestWriteMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.bin")
	var out bytes.Buffer
	if err := run([]string{"write", "--size", "3000000", "--buffer", "64KiB", p}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if res.Bytes != 3000000 || len(data) != 3000000 || len(res.SHA256) != 1 || res.SHA256[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("write: %+v, file of %d bytes", res, len(data))
	}
}

// TestDirectMode reads a tree of files, sizes on and off the 4 KiB
// alignment, with O_DIRECT: every byte is counted once, whatever the
// number of readers.
func TestDirectMode(t *testing.T) {
	dir := t.TempDir()
	sizes := map[string]int{"a": 1 << 20, "b": (1 << 20) + 4096, "sub/c": 5000, "sub/d": 0, "sub/e/f": 3 << 20}
	var want int64
	for name, size := range sizes {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		want += int64(size)
	}
	tests := []struct {
		args []string
		bad  bool
	}{
		{[]string{"direct", dir}, false},
		{[]string{"direct", "--readers", "4", "--buffer", "256KiB", dir}, false},
		{[]string{"direct", "--buffer", "1000", dir}, true},
		{[]string{"direct", "--readers", "0", dir}, true},
		{[]string{"direct", filepath.Join(dir, "sub", "e", "nothing")}, true},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := run(tc.args, &out, io.Discard)
		if (err != nil) != tc.bad {
			t.Errorf("%v: error %v, want error %v", tc.args, err, tc.bad)
			continue
		}
		if tc.bad {
			continue
		}
		var res result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Bytes != want || res.Seconds <= 0 {
			t.Errorf("%v: %+v, want %d bytes", tc.args, res, want)
		}
	}
}
