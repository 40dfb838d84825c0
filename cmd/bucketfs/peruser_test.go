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
	} {
		_, err := parseMountArgs(tc.args, io.Discard)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("mount %s: %v, want %q", strings.Join(tc.args, " "), err, tc.err)
		}
	}
}
