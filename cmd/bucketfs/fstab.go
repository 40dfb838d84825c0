package main

import (
	"errors"
	"fmt"
	"github.com/bucketfs/bucketfs/internal/units"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// helperName is the program mount(8) runs for file system type "bucketfs":
// it looks for /sbin/mount.TYPE (and /sbin/fs.d, /sbin/fs), so an /etc/fstab
// line with type bucketfs, "mount -t bucketfs" and "mount /mnt/data" all end
// up here. scripts/install makes it a symlink to the bucketfs binary.
const helperName = "mount.bucketfs"

// allBucketsSource is the fstab source that mounts every bucket. It is also
// the source the kernel shows in /proc/mounts for such a mount, so
// "mount -a" recognises the fstab line as mounted.
const allBucketsSource = "bucketfs"

// mount(8)'s exit codes that a helper reports (see mount(8), RETURN CODES).
const (
	helperExitUsage = 1  // incorrect invocation: bad source or option
	helperExitFail  = 32 // mount failure
)

// isMountHelper reports whether this process is the mount helper: started
// under the name mount.bucketfs, and not the daemon that the helper itself
// starts (startDaemon re-runs the executable, which may be a copy named
// mount.bucketfs, with the notify pipe in its environment).
func isMountHelper(argv0 string) bool {
	return filepath.Base(argv0) == helperName && os.Getenv(notifyEnv) == ""
}

// helperArgs is a command line of mount(8) for an external helper:
//
//	mount.bucketfs SPEC DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE.SUBTYPE]
type helperArgs struct {
	source, dir string
	options     []string // each -o argument, comma-separated options
	sloppy      bool     // -s: ignore unknown options instead of failing
	fake        bool     // -f: check everything, mount nothing
	verbose     bool     // -v: say what is run
}

func parseHelperArgs(args []string) (helperArgs, error) {
	var h helperArgs
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		// Flags may be grouped (-sv) and -o/-t/-N take the rest of the
		// argument or the next one (-oro or -o ro).
	flags:
		for j := 1; j < len(a); j++ {
			switch c := a[j]; c {
			case 's':
				h.sloppy = true
			case 'f':
				h.fake = true
			case 'n':
				// No /etc/mtab to skip: the kernel's table is the only one.
			case 'v':
				h.verbose = true
			case 'o', 't', 'N':
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return h, fmt.Errorf("-%c needs a value", c)
					}
					i++
					val = args[i]
				}
				switch c {
				case 'o':
					h.options = append(h.options, val)
				case 'N':
					return h, fmt.Errorf("-N %s: mounting in another mount namespace is not supported; run mount inside it (nsenter -m)", val)
				}
				// -t TYPE.SUBTYPE needs nothing: every type this helper is
				// run for is bucketfs.
				break flags
			default:
				return h, fmt.Errorf("unknown flag -%c: usage: %s SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]", c, helperName)
			}
		}
	}
	if len(pos) != 2 {
		return h, fmt.Errorf("want SOURCE MOUNTPOINT, got %d arguments: usage: %s s3://BUCKET[/PREFIX]|bucketfs MOUNTPOINT [-o OPTIONS]", len(pos), helperName)
	}
	h.source, h.dir = pos[0], pos[1]
	return h, nil
}

// fstabOption is one option bucketfs understands in /etc/fstab, and the
// "bucketfs mount" flag it becomes.
type fstabOption struct {
	name  string
	flag  string
	value bool                           // name=VALUE, else a bare name
	check func(v string) (string, error) // validates (and may rewrite) the value
}

var fstabOptions = []fstabOption{
	{name: "allow_other", flag: "allow-other"},
	{name: "allow_delete", flag: "allow-delete"},
	{name: "uid", flag: "uid", value: true, check: lookupUID},
	{name: "gid", flag: "gid", value: true, check: lookupGID},
	{name: "file_mode", flag: "file-mode", value: true, check: checkMode},
	{name: "dir_mode", flag: "dir-mode", value: true, check: checkMode},
	{name: "endpoint", flag: "endpoint-url", value: true},
	{name: "endpoint_url", flag: "endpoint-url", value: true},
	{name: "region", flag: "region", value: true},
	{name: "profile", flag: "profile", value: true},
	{name: "path_style", flag: "path-style"},
	{name: "cache_size", flag: "cache-size", value: true, check: checkSize},
	{name: "metadata_cache_size", flag: "metadata-cache-size", value: true, check: checkSize},
	{name: "cache_dir", flag: "cache-dir", value: true},
	{name: "staging_size", flag: "staging-size", value: true, check: checkSize},
	{name: "disk_cache", flag: "disk-cache", value: true},
	{name: "disk_cache_size", flag: "disk-cache-size", value: true, check: checkSize},
	{name: "metadata_ttl", flag: "metadata-ttl", value: true, check: checkDuration},
	{name: "request_timeout", flag: "request-timeout", value: true, check: checkDuration},
	{name: "stall_timeout", flag: "stall-timeout", value: true, check: checkDuration},
	{name: "log_level", flag: "log-level", value: true, check: checkLevel},
	{name: "log_file", flag: "log-file", value: true},
	{name: "credentials", flag: "credentials", value: true},
	{name: "metrics_addr", flag: "metrics-addr", value: true, check: checkMetricsAddrOption},
	{name: "identity", flag: "identity", value: true},
	{name: "identities", flag: "identities", value: true},
	{name: "staging_size_per_user", flag: "staging-size-per-user", value: true, check: checkSize},
}

// genericOptions are the options mount(8) and systemd put on fstab lines
// for themselves (or pass on to every helper). They mean nothing to a
// FUSE mount of S3: accepted and ignored.
var genericOptions = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "nofail": true, "_netdev": true,
	"user": true, "users": true, "nouser": true, "owner": true, "group": true,
	"exec": true, "noexec": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "lazytime": true, "nolazytime": true,
	"diratime": true, "nodiratime": true, "sync": true, "async": true, "dirsync": true,
	"silent": true, "loud": true, "nosymfollow": true, "symfollow": true,
}

// genericPrefixes are option families for other programs: x-systemd.*,
// x-gvfs-*, comment=..., and the user=NAME that mount(8) adds for a user
// mount.
var genericPrefixes = []string{"x-", "comment=", "user="}

// fstabOptionList is the list an unknown option is answered with.
func fstabOptionList() string {
	names := []string{"ro", "rw"}
	for _, o := range fstabOptions {
		n := o.name
		if o.value {
			n += "="
		}
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// translateOptions turns the comma-separated -o arguments of mount(8) into
// "bucketfs mount" flags. With sloppy, unknown options are skipped and
// returned as warnings.
func translateOptions(optArgs []string, sloppy bool) (flags, warnings []string, err error) {
	ro := false
	for _, arg := range optArgs {
		for _, opt := range splitOptions(arg) {
			if opt == "" {
				continue
			}
			key, val, hasVal := strings.Cut(opt, "=")
			val = unquote(val)
			switch {
			case key == "ro" && !hasVal:
				ro = true
				continue
			case key == "rw" && !hasVal:
				ro = false // the last of ro and rw wins, as in mount(8)
				continue
			case genericOptions[key] && !hasVal:
				continue
			}
			if generic(opt) {
				continue
			}
			// allow-other and endpoint-url are accepted too, spelled as
			// the command-line flags.
			o, ok := findFstabOption(strings.ReplaceAll(key, "-", "_"))
			switch {
			case !ok && sloppy:
				warnings = append(warnings, fmt.Sprintf("ignoring unknown option %q (-s)", opt))
				continue
			case !ok:
				return nil, nil, fmt.Errorf("unknown option %q: valid options are %s, and mount(8)'s generic ones (defaults, _netdev, nofail, noauto, x-systemd.*, ...)", opt, fstabOptionList())
			case o.value && (!hasVal || val == ""):
				return nil, nil, fmt.Errorf("option %s needs a value: %s=VALUE", key, o.name)
			case !o.value && hasVal:
				return nil, nil, fmt.Errorf("option %s takes no value: write just %s", opt, o.name)
			}
			if !o.value {
				flags = append(flags, "--"+o.flag)
				continue
			}
			if o.check != nil {
				v, cerr := o.check(val)
				if cerr != nil {
					return nil, nil, fmt.Errorf("option %s=%s: %v", key, val, cerr)
				}
				val = v
			}
			// --flag=VALUE, so a value that starts with "-" stays a value.
			flags = append(flags, "--"+o.flag+"="+val)
		}
	}
	if ro {
		// First, so it reads as the mode of the mount in -v output.
		flags = append([]string{"--read-only"}, flags...)
	}
	return flags, warnings, nil
}

func findFstabOption(name string) (fstabOption, bool) {
	for _, o := range fstabOptions {
		if o.name == name {
			return o, true
		}
	}
	return fstabOption{}, false
}

func generic(opt string) bool {
	for _, p := range genericPrefixes {
		if strings.HasPrefix(opt, p) {
			return true
		}
	}
	return false
}

// splitOptions splits at commas outside double quotes, as libmount does:
// comment="a,b" is one option.
func splitOptions(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// lookupUID accepts a number or a user name (uid=rstudio-user), since
// fstab lines are written by people and read on hosts with the same users.
func lookupUID(v string) (string, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return strconv.FormatUint(n, 10), nil
	}
	u, err := user.Lookup(v)
	if err != nil {
		return "", fmt.Errorf("not a number and not a user on this host")
	}
	return u.Uid, nil
}

func lookupGID(v string) (string, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return strconv.FormatUint(n, 10), nil
	}
	g, err := user.LookupGroup(v)
	if err != nil {
		return "", fmt.Errorf("not a number and not a group on this host")
	}
	return g.Gid, nil
}

func checkMode(v string) (string, error) {
	var m uint32
	return v, modeValue{&m}.Set(v)
}

func checkSize(v string) (string, error) {
	_, err := units.ParseSize(v)
	return v, err
}

func checkDuration(v string) (string, error) {
	var d time.Duration
	if err := (durationValue{&d}).Set(v); err != nil {
		return "", err
	}
	if d <= 0 {
		return "", errors.New("must be positive")
	}
	return v, nil
}

func checkLevel(v string) (string, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return "", fmt.Errorf("use debug, info, warn or error")
	}
	return v, nil
}

// helperMountArgs is the "bucketfs mount" command line for what mount(8)
// asked: the translated options, the source (none for every bucket) and
// the mount point. asRoot adds a log file under /var/log/bucketfs when the
// options name none: a mount made at boot has no home directory to log to.
func helperMountArgs(h helperArgs, asRoot bool) (args, warnings []string, err error) {
	flags, warnings, err := translateOptions(h.options, h.sloppy)
	if err != nil {
		return nil, nil, err
	}
	args = flags
	if asRoot && !hasFlag(flags, "log-file") {
		args = append(args, "--log-file="+defaultHelperLog(h.dir))
	}
	switch {
	case h.source == allBucketsSource:
		// every bucket: no source argument
	case h.source == "s3://" || h.source == "s3:///":
		return nil, nil, fmt.Errorf("source %q names no bucket: use %s as the source to mount every bucket, or s3://BUCKET[/PREFIX]", h.source, allBucketsSource)
	case strings.HasPrefix(h.source, "s3://"):
		args = append(args, h.source)
	case filepath.IsAbs(h.source) && filepath.Base(h.source) == allBucketsSource:
		// mount(8) makes a source that names an existing file absolute.
		return nil, nil, fmt.Errorf("mount(8) turned the source %s into the path %s because a file of that name is in the current directory: run mount from another directory", allBucketsSource, h.source)
	default:
		return nil, nil, fmt.Errorf("source %q: want s3://BUCKET[/PREFIX], or %s to mount every bucket", h.source, allBucketsSource)
	}
	// "--" so that a mount point starting with "-" is not read as a flag.
	return append(args, "--", h.dir), warnings, nil
}

func hasFlag(flags []string, name string) bool {
	for _, f := range flags {
		if f == "--"+name || strings.HasPrefix(f, "--"+name+"=") {
			return true
		}
	}
	return false
}

// helperLogDir holds the logs of mounts that mount(8) made as root.
const helperLogDir = "/var/log/bucketfs"

// defaultHelperLog names the log of the mount at dir after its path, as
// systemd names mount units: /mnt/data logs to /var/log/bucketfs/mnt-data.log.
func defaultHelperLog(dir string) string {
	name := strings.Trim(filepath.Clean(dir), "/")
	if name == "" || name == "." {
		name = "root"
	}
	name = strings.ReplaceAll(name, "/", "-")
	return filepath.Join(helperLogDir, name+".log")
}

// mountHelper is main for mount.bucketfs: it turns mount(8)'s command line
// into "bucketfs mount" and runs it, so the mount daemonizes and mount(8)
// returns once the mount is ready. Errors are one line on stderr, with
// mount(8)'s exit codes.
func mountHelper(args []string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %s\n", helperName, err)
		return code
	}
	h, err := parseHelperArgs(args)
	if err != nil {
		return fail(helperExitUsage, err)
	}
	asRoot := os.Geteuid() == 0
	margs, warnings, err := helperMountArgs(h, asRoot)
	if err != nil {
		return fail(helperExitUsage, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: %s\n", helperName, w)
	}
	if h.verbose {
		fmt.Fprintf(stderr, "%s: bucketfs mount %s\n", helperName, strings.Join(margs, " "))
	}
	if h.fake {
		if _, err := parseMountArgs(margs, io.Discard); err != nil {
			return fail(helperExitUsage, err)
		}
		return 0
	}
	if asRoot && slices.Contains(margs, "--log-file="+defaultHelperLog(h.dir)) {
		_ = os.MkdirAll(helperLogDir, 0o755)
	}
	err = mountCommand(margs, stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return fail(helperExitUsage, err)
	default:
		return fail(helperExitFail, err)
	}
}
