package main

import (
	"bytes"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestReadStatus: the control file is read whole, and each failure is one
// line that says what to do.
func TestReadStatus(t *testing.T) {
	const doc = `{"version":"v1"}`
	const file = "/mnt/s3/.bucketfs/status.json"
	pathErr := func(errno syscall.Errno) error { return &fs.PathError{Op: "open", Path: file, Err: errno} }
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string
	}{
		{name: "ok"},
		{name: "older daemon, no control directory", err: pathErr(syscall.ENOENT),
			wantErr: "the bucketfs serving /mnt/s3 is older than this one and has no " + file + ": unmount it and mount again"},
		{name: "daemon died", err: pathErr(syscall.ENOTCONN),
			wantErr: "/mnt/s3 is not connected: the bucketfs process died; run bucketfs unmount /mnt/s3 and mount again"},
		{name: "another user's mount", err: pathErr(syscall.EACCES),
			wantErr: "cannot read " + file + ": permission denied: run it as the user who mounted it"},
		{name: "anything else", err: pathErr(syscall.EIO), wantErr: "cannot read " + file + ": input/output error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read := func(p string) ([]byte, error) {
				if p != file {
					t.Fatalf("read %q, want %q", p, file)
				}
				if tc.err != nil {
					return nil, tc.err
				}
				return []byte(doc), nil
			}
			got, err := readStatus("/mnt/s3", read)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line containing %q", err, tc.wantErr)
				}
				if strings.Count(err.Error(), file) > 1 {
					t.Errorf("err = %v names the file twice", err)
				}
				return
			}
			if err != nil || string(got) != doc {
				t.Fatalf("got %q, %v; want %q", got, err, doc)
			}
		})
	}
}

// TestStatusCommandNotAMount: a directory that is no mount gets the one
// line that says how to mount it.
func TestStatusCommandNotAMount(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"status", dir}, 1, "bucketfs status: " + dir + " is not a bucketfs mount: mount it with bucketfs mount [s3://BUCKET] " + dir},
		{[]string{"status", "--json", dir}, 1, "is not a bucketfs mount"},
		{[]string{"status", "/proc"}, 1, "/proc is a proc mount, not bucketfs"},
		{[]string{"status"}, 2, "want exactly one MOUNTPOINT"},
		{[]string{"status", "--bogus", dir}, 2, "bogus"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.wantErr) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want %d and one line containing %q", tc.args, code, stderr.String(), tc.code, tc.wantErr)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "bucketfs status /mnt/s3") {
		t.Errorf("status --help: exit %d, %q", code, stdout.String())
	}
}
