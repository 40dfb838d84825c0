package main

import (
	"io"
	"strings"
	"testing"
)

func TestIdentityFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"/mnt/s3"}, ""},
		{[]string{"--identity", "mount", "/mnt/s3"}, ""},
		{[]string{"--identity", "per-user", "--allow-other", "--read-only", "/mnt/s3"}, ""},
		{[]string{"--identity", "per-user", "--allow-other", "--read-only", "--identities", "/etc/x.conf", "/mnt/s3"}, ""},
		{[]string{"--identity", "everyone", "/mnt/s3"}, `--identity "everyone": use mount or per-user`},
		{[]string{"--identity", "per-user", "--read-only", "/mnt/s3"}, "add --allow-other"},
		{[]string{"--identity", "per-user", "--allow-other", "/mnt/s3"}, ""},
		{[]string{"--identity", "per-user", "--allow-other", "--read-only", "s3://b", "/mnt/s3"}, "mounts every bucket"},
		{[]string{"--identity", "per-user", "--allow-other", "--staging-size-per-user", "2GiB", "/mnt/s3"}, ""},
		{[]string{"--identity", "per-user", "--allow-other", "--staging-size", "4GiB", "--staging-size-per-user", "4GiB", "/mnt/s3"}, ""},
		{[]string{"--staging-size-per-user", "2GiB", "/mnt/s3"}, "add --identity per-user"},
		{[]string{"--identity", "per-user", "--allow-other", "--staging-size-per-user", "1000", "/mnt/s3"}, "--staging-size-per-user 1000 is too small: give at least 1MiB"},
		{[]string{"--identity", "per-user", "--allow-other", "--staging-size", "2GiB", "--staging-size-per-user", "3GiB", "/mnt/s3"},
			"--staging-size-per-user 3GiB is more than --staging-size 2GiB, which bounds all users together: lower it, or raise --staging-size"},
	} {
		_, err := parseMountArgs(tc.args, io.Discard)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("mount %s: %v, want %q", strings.Join(tc.args, " "), err, tc.err)
		}
	}
}

func TestPerUserModes(t *testing.T) {
	for _, tc := range []struct {
		args            []string
		file, dir       uint32
		stagingUnderVar bool
	}{
		{[]string{"--identity", "per-user", "--allow-other", "/mnt/s3"}, 0o666, 0o777, true},
		{[]string{"--identity", "per-user", "--allow-other", "--read-only", "/mnt/s3"}, 0o444, 0o555, true},
		{[]string{"--identity", "per-user", "--allow-other", "--file-mode", "0640", "--cache-dir", "/srv/c", "/mnt/s3"}, 0o640, 0o777, false},
		{[]string{"--allow-other", "/mnt/s3"}, 0o644, 0o755, false},
	} {
		c, err := parseMountArgs(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.FileMode != tc.file || c.DirMode != tc.dir {
			t.Errorf("mount %s: modes %o %o, want %o %o", strings.Join(tc.args, " "), c.FileMode, c.DirMode, tc.file, tc.dir)
		}
		if got := stagingBases(c)[0] == perUserStagingBase; got != tc.stagingUnderVar {
			t.Errorf("mount %s: staging bases %q", strings.Join(tc.args, " "), stagingBases(c))
		}
	}
}
