package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadWriteMountOptions(t *testing.T) {
	tests := []struct {
		readOnly bool
		opts     []string
		rdonly   bool
	}{
		{false, []string{"default_permissions"}, false},
		{true, []string{"ro", "default_permissions"}, true},
	}
	for _, tc := range tests {
		c := mountConfig{ReadOnly: tc.readOnly}
		if got := mountOptions(c); !slices.Equal(got, tc.opts) {
			t.Errorf("read-only %v: options %q, want %q", tc.readOnly, got, tc.opts)
		}
		if got := directMountFlags(c)&syscall.MS_RDONLY != 0; got != tc.rdonly {
			t.Errorf("read-only %v: MS_RDONLY %v", tc.readOnly, got)
		}
	}
}

func TestStagingDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/home/u/.cache")
	t.Setenv("TMPDIR", "/scratch")
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		c        mountConfig
		bases    []string
		dirStart string
	}{
		{mountConfig{MountPoint: "/mnt/s3"}, []string{"/home/u/.cache/bucketfs", fmt.Sprintf("/scratch/bucketfs-%d", os.Getuid()), fmt.Sprintf("/tmp/bucketfs-%d", os.Getuid())},
			"/home/u/.cache/bucketfs/staging/mnt-s3-20261127T100000-"},
		{mountConfig{MountPoint: "/", CacheDir: "/var/tmp/x"}, []string{"/var/tmp/x"}, "/var/tmp/x/staging/root-20261127T100000-"},
	}
	for _, tc := range tests {
		bases := stagingBases(tc.c)
		if !slices.Equal(bases, tc.bases) {
			t.Errorf("stagingBases(%+v) = %q, want %q", tc.c, bases, tc.bases)
		}
		got := stagingDir(bases[0], tc.c, now)
		if !strings.HasPrefix(got, tc.dirStart) || filepath.Clean(got) != got {
			t.Errorf("stagingDir(%+v) = %q, want %s<pid>", tc.c, got, tc.dirStart)
		}
	}
}

// TestOpenStagingFallback: a user whose cache directory cannot be made
// still gets a read-write mount, staged under the temporary directory.
func TestOpenStagingFallback(t *testing.T) {
	blocked := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocked, nil, 0o600)
	t.Setenv("XDG_CACHE_HOME", blocked) // a file: nothing can be made below it
	t.Setenv("TMPDIR", t.TempDir())
	area, err := openStaging(mountConfig{MountPoint: "/m", StagingSize: 1 << 20}, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer area.Close()
	if !strings.HasPrefix(area.Dir(), os.Getenv("TMPDIR")) {
		t.Errorf("staging dir %s, want it under TMPDIR", area.Dir())
	}
}

// TestSweepStaging: directories of dead mounts go when empty and stay (and
// are reported) when they hold files; those of live mounts are not touched.
func TestSweepStaging(t *testing.T) {
	base := t.TempDir()
	dead := "mnt-x-20260101T000000-2147483646" // no such pid
	live := fmt.Sprintf("mnt-y-20260101T000000-%d", os.Getppid())
	for _, d := range []string{dead, dead + "-kept", live, "odd-name"} {
		os.MkdirAll(filepath.Join(base, "staging", d), 0o700)
	}
	// "-kept" makes the pid "kept": not a number, so it counts as alive;
	// a dead mount's directory with a file:
	withFile := "mnt-z-20260101T000000-2147483645"
	os.MkdirAll(filepath.Join(base, "staging", withFile), 0o700)
	os.WriteFile(filepath.Join(base, "staging", withFile, "1-data.csv"), []byte("x"), 0o600)
	var logged strings.Builder
	sweepStaging(base, slog.New(slog.NewTextHandler(&logged, nil)))
	for d, want := range map[string]bool{dead: false, dead + "-kept": true, live: true, "odd-name": true, withFile: true} {
		_, err := os.Stat(filepath.Join(base, "staging", d))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", d, got, want)
		}
	}
	if !strings.Contains(logged.String(), withFile) {
		t.Errorf("left files not reported: %s", logged.String())
	}
}
