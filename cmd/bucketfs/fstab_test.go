package main

import (
	"bytes"
	"io"
	"os"
	"os/user"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/stage"
)

func TestParseHelperArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    helperArgs
		wantErr string
	}{
		{name: "mount -t", args: []string{"s3://b", "/mnt/d", "-o", "ro,allow_other"},
			want: helperArgs{source: "s3://b", dir: "/mnt/d", options: []string{"ro,allow_other"}}},
		{name: "subtype and verbose", args: []string{"bucketfs", "/mnt/d", "-v", "-o", "rw", "-t", "bucketfs.x"},
			want: helperArgs{source: "bucketfs", dir: "/mnt/d", options: []string{"rw"}, verbose: true}},
		{name: "grouped flags, joined -o", args: []string{"-sfn", "s3://b/p", "/mnt/d", "-oro"},
			want: helperArgs{source: "s3://b/p", dir: "/mnt/d", options: []string{"ro"}, sloppy: true, fake: true}},
		{name: "two -o", args: []string{"s3://b", "/m", "-o", "ro", "-o", "uid=1"},
			want: helperArgs{source: "s3://b", dir: "/m", options: []string{"ro", "uid=1"}}},
		{name: "no options", args: []string{"s3://b", "/m"},
			want: helperArgs{source: "s3://b", dir: "/m"}},
		{name: "namespace", args: []string{"s3://b", "/m", "-N", "/proc/1/ns/mnt"}, wantErr: "namespace"},
		{name: "unknown flag", args: []string{"s3://b", "/m", "-x"}, wantErr: "unknown flag -x"},
		{name: "-o without value", args: []string{"s3://b", "/m", "-o"}, wantErr: "-o needs a value"},
		{name: "missing dir", args: []string{"s3://b"}, wantErr: "want SOURCE MOUNTPOINT"},
		{name: "extra", args: []string{"s3://b", "/m", "/n"}, wantErr: "want SOURCE MOUNTPOINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHelperArgs(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTranslateOptions(t *testing.T) {
	root, err := user.LookupId("0")
	if err != nil {
		t.Skip("no user 0 on this host")
	}
	tests := []struct {
		name     string
		opts     []string
		sloppy   bool
		want     []string
		warnings int
		wantErr  string
	}{
		{name: "issue example", opts: []string{"ro,allow_other,uid=1000,gid=1000,_netdev"},
			want: []string{"--read-only", "--allow-other", "--uid=1000", "--gid=1000"}},
		{name: "every option", opts: []string{"ro,allow_other,uid=1,gid=2,file_mode=0440,dir_mode=0550," +
			"endpoint=http://127.0.0.1:7070,region=eu-west-1,profile=analytics,path_style,cache_size=2GiB," +
			"metadata_ttl=5m,log_level=debug,log_file=/var/log/b.log,credentials=instance-role,cache_dir=/var/cache/b,staging_size=20GiB,metrics_addr=127.0.0.1:9100,disk_cache=/var/tmp/blk,disk_cache_size=20GiB"},
			want: []string{"--read-only", "--allow-other", "--uid=1", "--gid=2", "--file-mode=0440", "--dir-mode=0550",
				"--endpoint-url=http://127.0.0.1:7070", "--region=eu-west-1", "--profile=analytics", "--path-style",
				"--cache-size=2GiB", "--metadata-ttl=5m", "--log-level=debug", "--log-file=/var/log/b.log",
				"--credentials=instance-role", "--cache-dir=/var/cache/b", "--staging-size=20GiB", "--metrics-addr=127.0.0.1:9100", "--disk-cache=/var/tmp/blk", "--disk-cache-size=20GiB"}},
		{name: "per-user staging share", opts: []string{"rw,allow_other,identity=per-user,staging_size_per_user=2GiB"},
			want: []string{"--allow-other", "--identity=per-user", "--staging-size-per-user=2GiB"}},
		{name: "endpoint_url and flag spellings", opts: []string{"ro,endpoint_url=https://s3.example.com,allow-other,path-style"},
			want: []string{"--read-only", "--endpoint-url=https://s3.example.com", "--allow-other", "--path-style"}},
		{name: "generic options ignored", opts: []string{"defaults,ro,_netdev,nofail,noauto,auto,user,users,nouser,owner," +
			"exec,noexec,suid,nosuid,dev,nodev,relatime,noatime,x-systemd.automount,x-systemd.idle-timeout=60," +
			"comment=\"a,b\",user=alice"}, want: []string{"--read-only"}},
		{name: "user name for uid", opts: []string{"ro,uid=" + root.Username, "gid=0"},
			want: []string{"--read-only", "--uid=0", "--gid=0"}},
		{name: "quoted value", opts: []string{`ro,log_file="/var/log/a b.log"`}, want: []string{"--read-only", "--log-file=/var/log/a b.log"}},
		{name: "ro after rw wins", opts: []string{"rw", "ro"}, want: []string{"--read-only"}},
		{name: "rw after ro wins", opts: []string{"ro", "rw"}},
		{name: "empty", opts: nil},
		{name: "rw", opts: []string{"rw,allow_other"}, want: []string{"--allow-other"}},
		{name: "allow_delete", opts: []string{"rw,allow_delete,allow_other"}, want: []string{"--allow-delete", "--allow-other"}},
		{name: "mount default rw", opts: []string{"rw"}},
		{name: "unknown", opts: []string{"ro,bogus=1"}, wantErr: `unknown option "bogus=1": valid options are ro, rw, allow_other, allow_delete, uid=`},
		{name: "unknown sloppy", opts: []string{"ro,bogus=1,uid=3"}, sloppy: true, want: []string{"--read-only", "--uid=3"}, warnings: 1},
		{name: "value missing", opts: []string{"ro,region="}, wantErr: "option region needs a value"},
		{name: "bare value option", opts: []string{"ro,uid"}, wantErr: "option uid needs a value"},
		{name: "value on a bare option", opts: []string{"ro,allow_other=1"}, wantErr: "takes no value"},
		{name: "bad uid", opts: []string{"ro,uid=no-such-user-bucketfs"}, wantErr: "option uid=no-such-user-bucketfs: not a number"},
		{name: "bad mode", opts: []string{"ro,file_mode=rw"}, wantErr: "option file_mode=rw"},
		{name: "bad size", opts: []string{"ro,cache_size=lots"}, wantErr: "option cache_size=lots"},
		{name: "bad ttl", opts: []string{"ro,metadata_ttl=soon"}, wantErr: "option metadata_ttl=soon"},
		{name: "zero ttl", opts: []string{"ro,metadata_ttl=0"}, wantErr: "must be positive"},
		{name: "bad level", opts: []string{"ro,log_level=loud"}, wantErr: "option log_level=loud"},
		{name: "metrics on IPv6 loopback", opts: []string{"metrics_addr=[::1]:9100"}, want: []string{"--metrics-addr=[::1]:9100"}},
		{name: "metrics address without port", opts: []string{"ro,metrics_addr=localhost"}, wantErr: "option metrics_addr=localhost: want HOST:PORT"},
		{name: "generic name with a value", opts: []string{"ro,nofail=1"}, wantErr: `unknown option "nofail=1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := translateOptions(tc.opts, tc.sloppy)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("flags = %q, want %q", got, tc.want)
			}
			if len(warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", warnings, tc.warnings)
			}
		})
	}
}

func TestHelperMountArgs(t *testing.T) {
	tests := []struct {
		name    string
		h       helperArgs
		asRoot  bool
		want    []string
		wantErr string
	}{
		{name: "bucket", h: helperArgs{source: "s3://b/p", dir: "/mnt/d", options: []string{"ro,uid=1"}},
			want: []string{"--read-only", "--uid=1", "s3://b/p", "--", "/mnt/d"}},
		{name: "all buckets", h: helperArgs{source: "bucketfs", dir: "/mnt/s3", options: []string{"rw"}},
			want: []string{"--", "/mnt/s3"}},
		{name: "root gets a log file", h: helperArgs{source: "bucketfs", dir: "/mnt/s3/", options: []string{"ro"}}, asRoot: true,
			want: []string{"--read-only", "--log-file=/var/log/bucketfs/mnt-s3.log", "--", "/mnt/s3/"}},
		{name: "root keeps its log_file", h: helperArgs{source: "s3://b", dir: "/m", options: []string{"rw,log_file=/tmp/x.log"}}, asRoot: true,
			want: []string{"--log-file=/tmp/x.log", "s3://b", "--", "/m"}},
		{name: "bare s3://", h: helperArgs{source: "s3://", dir: "/m", options: []string{"ro"}}, wantErr: "use bucketfs as the source"},
		{name: "not a source", h: helperArgs{source: "/dev/sda1", dir: "/m", options: []string{"ro"}}, wantErr: `source "/dev/sda1": want s3://`},
		{name: "source made a path by mount(8)", h: helperArgs{source: "/root/bucketfs", dir: "/m", options: []string{"ro"}},
			wantErr: "run mount from another directory"},
		{name: "options checked first", h: helperArgs{source: "s3://b", dir: "/m", options: []string{"ro,nope"}}, wantErr: `unknown option "nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := helperMountArgs(tc.h, tc.asRoot)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("args = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestHelperArgsParse: what the helper hands to the mount command must
// parse to the configuration the fstab line meant.
func TestHelperArgsParse(t *testing.T) {
	h := helperArgs{source: "s3://bkt/data/2024", dir: "/mnt/d", options: []string{
		"ro,allow_other,uid=1000,gid=1001,file_mode=0440,dir_mode=0550,endpoint=http://127.0.0.1:9,region=eu-west-1," +
			"profile=p,path_style,cache_size=1GiB,metadata_cache_size=64MiB,metadata_ttl=90s,request_timeout=20s,log_level=warn,log_file=/tmp/l.log,disk_cache=/var/tmp/blk,disk_cache_size=2GiB"}}
	args, _, err := helperMountArgs(h, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseMountArgs(args, io.Discard)
	if err != nil {
		t.Fatalf("parseMountArgs(%q): %v", args, err)
	}
	want := mountConfig{
		Bucket: "bkt", Prefix: "data/2024/", MountPoint: "/mnt/d",
		connFlags: connFlags{Endpoint: "http://127.0.0.1:9", Region: "eu-west-1", Profile: "p", PathStyle: true},
		ReadOnly:  true, AllowOther: true,
		UID: 1000, GID: 1001, FileMode: 0o440, DirMode: 0o550,
		CacheSize: 1 << 30, MetadataSize: 64 << 20, MetadataTTL: 90 * time.Second, RequestTimeout: 20 * time.Second,
		LogLevel: "warn", LogFile: "/tmp/l.log", StagingSize: stage.DefaultLimit,
		DiskCache: "/var/tmp/blk", DiskCacheSize: 2 << 30,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config = %+v\nwant     %+v", c, want)
	}
}

// TestFstabOptionsHaveFlags: every fstab option names a flag the mount
// command has, so a renamed flag cannot silently break fstab lines.
func TestFstabOptionsHaveFlags(t *testing.T) {
	fs := mountFlags(&mountConfig{})
	for _, o := range fstabOptions {
		if fs.Lookup(o.flag) == nil {
			t.Errorf("fstab option %s maps to --%s, which bucketfs mount does not have", o.name, o.flag)
		}
	}
}

func TestIsMountHelper(t *testing.T) {
	tests := []struct {
		argv0, notify string
		want          bool
	}{
		{"/sbin/mount.bucketfs", "", true},
		{"mount.bucketfs", "", true},
		{"/usr/local/bin/bucketfs", "", false},
		{"/sbin/mount.bucketfs", "3", false}, // the daemon the helper started
		{"/sbin/mount.fuse", "", false},
	}
	for _, tc := range tests {
		t.Setenv(notifyEnv, tc.notify)
		if got := isMountHelper(tc.argv0); got != tc.want {
			t.Errorf("isMountHelper(%q) with %s=%q = %v, want %v", tc.argv0, notifyEnv, tc.notify, got, tc.want)
		}
	}
}

func TestDefaultHelperLog(t *testing.T) {
	tests := map[string]string{
		"/mnt/data":     "/var/log/bucketfs/mnt-data.log",
		"/mnt/data/":    "/var/log/bucketfs/mnt-data.log",
		"/srv/a/b/c":    "/var/log/bucketfs/srv-a-b-c.log",
		"/":             "/var/log/bucketfs/root.log",
		"relative/path": "/var/log/bucketfs/relative-path.log",
	}
	for dir, want := range tests {
		if got := defaultHelperLog(dir); got != want {
			t.Errorf("defaultHelperLog(%q) = %q, want %q", dir, got, want)
		}
	}
}

// TestMountHelperFake: mount -f (fake) runs the whole translation and
// argument check and mounts nothing; failures are one line with mount(8)'s
// exit code for bad usage.
func TestMountHelperFake(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // substring; "" means stderr must be empty
	}{
		{name: "ok", args: []string{"s3://b", t.TempDir(), "-f", "-o", "ro,uid=1"}},
		{name: "verbose", args: []string{"bucketfs", "/mnt/x", "-fv", "-o", "ro,log_file=/tmp/l"},
			stderr: "mount.bucketfs: bucketfs mount --read-only --log-file=/tmp/l -- /mnt/x"},
		{name: "unknown option", args: []string{"s3://b", "/m", "-f", "-o", "ro,frob"}, code: helperExitUsage,
			stderr: `mount.bucketfs: unknown option "frob"`},
		{name: "rw", args: []string{"s3://b", t.TempDir(), "-f", "-o", "rw,staging_size=1GiB"}},
		{name: "staging too small", args: []string{"s3://b", "/m", "-f", "-o", "rw,staging_size=1000"}, code: helperExitUsage, stderr: "--staging-size"},
		{name: "bad bucket url", args: []string{"s3://b/a/../x", "/m", "-f", "-o", "ro"}, code: helperExitUsage, stderr: "segment"},
		{name: "sloppy", args: []string{"s3://b", "/m", "-sf", "-o", "ro,frob"}, stderr: `ignoring unknown option "frob"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := mountHelper(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			switch {
			case tc.stderr == "" && stderr.Len() != 0:
				t.Errorf("stderr = %q, want nothing", stderr.String())
			case !strings.Contains(stderr.String(), tc.stderr):
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.stderr)
			}
			if n := strings.Count(stderr.String(), "\n"); n > 1 {
				t.Errorf("stderr has %d lines, want at most one: %q", n, stderr.String())
			}
		})
	}
}

func TestSplitOptions(t *testing.T) {
	tests := map[string][]string{
		"ro,uid=1":          {"ro", "uid=1"},
		`comment="a,b",ro`:  {`comment="a,b"`, "ro"},
		"":                  {""},
		"ro,,allow_other":   {"ro", "", "allow_other"},
		`x="unterminated,y`: {`x="unterminated,y`},
	}
	for in, want := range tests {
		if got := splitOptions(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitOptions(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEveryFlagReachable: every flag of "bucketfs mount" can be given as
// an fstab option (or is one mount(8) itself handles), and is documented
// in docs/CONFIGURATION.md.
func TestEveryFlagReachable(t *testing.T) {
	var help bytes.Buffer
	_, _ = parseMountArgs([]string{"--help"}, &help)
	doc, err := os.ReadFile("../../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	byFlag := map[string]bool{
		"read-only":  true, // ro / rw
		"foreground": true, // the helper always daemonizes
	}
	for _, o := range fstabOptions {
		byFlag[o.flag] = true
	}
	for _, line := range strings.Split(help.String(), "\n") {
		f, ok := strings.CutPrefix(line, "  --")
		if !ok {
			continue
		}
		name := strings.Fields(f)[0]
		if !byFlag[name] {
			t.Errorf("--%s has no fstab option", name)
		}
		if !strings.Contains(string(doc), "`--"+name) {
			t.Errorf("--%s is not documented in docs/CONFIGURATION.md", name)
		}
	}
}
