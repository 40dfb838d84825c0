package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseS3URL(t *testing.T) {
	tests := []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://b", "b", "", true},
		{"s3://b/", "b", "", true},
		{"s3://b/data", "b", "data/", true},
		{"s3://b/data/2024/", "b", "data/2024/", true},
		{"s3://", "", "", false},
		{"b/data", "", "", false},
		{"s3://b/a//c", "", "", false},
		{"s3://b/../x", "", "", false},
	}
	for _, tt := range tests {
		b, p, err := parseS3URL(tt.in)
		if (err == nil) != tt.ok || b != tt.bucket || p != tt.prefix {
			t.Errorf("parseS3URL(%q) = %q, %q, %v", tt.in, b, p, err)
		}
	}
}

func TestParseMountArgs(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(mountConfig) bool
		wantErr string
	}{
		{[]string{"/mnt/s3"}, func(c mountConfig) bool {
			return c.MountPoint == "/mnt/s3" && c.Bucket == "" && !c.ReadOnly && c.FileMode == 0o644 && c.DirMode == 0o755 &&
				c.StagingSize == 10<<30 && c.CacheDir == ""
		}, ""},
		{[]string{"--read-only", "/m"}, func(c mountConfig) bool { return c.ReadOnly && c.FileMode == 0o444 && c.DirMode == 0o555 }, ""},
		{[]string{"/m"}, func(c mountConfig) bool { return !c.AllowDelete }, ""},
		{[]string{"--allow-delete", "/m"}, func(c mountConfig) bool { return c.AllowDelete }, ""},
		{[]string{"--allow-delete", "--read-only", "/m"}, nil, "--allow-delete and --read-only contradict"},
		{[]string{"--cache-dir", "/var/tmp/b", "--staging-size", "2GiB", "/m"}, func(c mountConfig) bool {
			return c.CacheDir == "/var/tmp/b" && c.StagingSize == 2<<30
		}, ""},
		{[]string{"/m"}, func(c mountConfig) bool { return c.DiskCache == "" && c.DiskCacheSize == 10<<30 }, ""},
		{[]string{"--disk-cache", "/var/tmp/blocks", "--disk-cache-size", "50GiB", "/m"}, func(c mountConfig) bool {
			return c.DiskCache == "/var/tmp/blocks" && c.DiskCacheSize == 50<<30
		}, ""},
		{[]string{"--disk-cache", "/var/tmp/blocks", "--disk-cache=", "/m"}, func(c mountConfig) bool { return c.DiskCache == "" }, ""},
		{[]string{"--disk-cache", "rel/blocks", "/m"}, func(c mountConfig) bool { return filepath.IsAbs(c.DiskCache) }, ""},
		{[]string{"--disk-cache", "/var/tmp/b", "--disk-cache-size", "1MiB", "/m"}, nil, "--disk-cache-size 1MiB is too small: give at least 16MiB"},
		{[]string{"s3://b/p", "/mnt", "--cache-size", "1GiB", "--metadata-ttl", "5m"}, func(c mountConfig) bool {
			return c.Bucket == "b" && c.Prefix == "p/" && c.CacheSize == 1<<30 && c.MetadataTTL == 5*time.Minute
		}, ""},
		{[]string{"--file-mode", "0440", "--dir-mode=0550", "--uid", "7", "/m"}, func(c mountConfig) bool {
			return c.FileMode == 0o440 && c.DirMode == 0o550 && c.UID == 7
		}, ""},
		{[]string{"--metadata-ttl", "30", "/m"}, func(c mountConfig) bool { return c.MetadataTTL == 30*time.Second }, ""},
		{[]string{"/m"}, func(c mountConfig) bool { return c.MetricsAddr == "" && c.MetadataSize == 128<<20 }, ""},
		{[]string{"--metadata-cache-size", "32MiB", "/m"}, func(c mountConfig) bool { return c.MetadataSize == 32<<20 }, ""},
		{[]string{"--metrics-addr", "127.0.0.1:9100", "/m"}, func(c mountConfig) bool { return c.MetricsAddr == "127.0.0.1:9100" }, ""},
		{[]string{"--metrics-addr", "9100", "/m"}, nil, `--metrics-addr "9100": want HOST:PORT`},
		{[]string{"--metrics-addr", "127.0.0.1:http", "/m"}, nil, "the port must be a number"},
		{nil, nil, "missing MOUNTPOINT"},
		{[]string{"a", "b", "c"}, nil, "too many arguments"},
		{[]string{"--staging-size", "10", "/m"}, nil, "--staging-size"},
		{[]string{"--cache-size", "lots", "/m"}, nil, "not a size"},
		{[]string{"--metadata-cache-size", "64KiB", "/m"}, nil, "--metadata-cache-size 64KiB is too small"},
		{[]string{"--file-mode", "999", "/m"}, nil, "octal"},
		{[]string{"--log-level", "loud", "/m"}, nil, "--log-level"},
		{[]string{"--no-such-flag", "/m"}, nil, "no-such-flag"},
		{[]string{"bucket", "/m"}, nil, "not an s3:// URL"},
	}
	for _, tt := range tests {
		c, err := parseMountArgs(tt.args, io.Discard)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !tt.check(c) {
			t.Errorf("%q: %+v, %v", tt.args, c, err)
		}
	}
}

func TestRunHelpAndErrors(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"--help"}, 0, "bucketfs mount [flags] MOUNTPOINT", ""},
		{[]string{"mount", "--help"}, 0, "--cache-size", ""},
		{[]string{"unmount", "--help"}, 0, "bucketfs unmount /mnt/s3", ""},
		{[]string{"version"}, 0, "bucketfs ", ""},
		{[]string{"frobnicate"}, 2, "", "unknown command"},
		{[]string{"mount"}, 2, "", "missing MOUNTPOINT"},
		{[]string{"mount", "/definitely/not/here"}, 1, "", "does not exist"},
		{[]string{"unmount", "/definitely/not/here"}, 1, "", "not mounted"},
	}
	for _, tt := range tests {
		var out, errb strings.Builder
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.inStdout) || !strings.Contains(errb.String(), tt.inStderr) {
			t.Errorf("run(%q) = %d\nstdout %q\nstderr %q", tt.args, code, out.String(), errb.String())
		}
		if tt.code != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
			t.Errorf("run(%q): error is not one line: %q", tt.args, errb.String())
		}
	}
}
