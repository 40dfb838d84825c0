package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/bucketfs/bucketfs/internal/units"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/auth"
	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/cache/disk"
	"github.com/bucketfs/bucketfs/fusefs"
	"github.com/bucketfs/bucketfs/identity"
	"github.com/bucketfs/bucketfs/internal/watchdog"
	"github.com/bucketfs/bucketfs/metrics"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/metered"
	"github.com/bucketfs/bucketfs/store/s3"
)

const mountUsage = `Usage:
  bucketfs mount [flags] MOUNTPOINT
  bucketfs mount [flags] s3://BUCKET[/PREFIX] MOUNTPOINT

Mounts every bucket the credentials can list (one directory per bucket), or
one bucket or prefix. Returns once the mount is ready; the mount keeps serving
in the background until "bucketfs unmount MOUNTPOINT". With --foreground it
stays attached and unmounts on Ctrl-C or SIGTERM.

The mount is read-write: a file written through it is staged on local disk
(--cache-dir, at most --staging-size) and uploaded when it is closed, so
other readers see the old object or the new one, never half of it; a failed
upload makes close() fail with EIO and keeps the data staged. With
--read-only every change is refused with "Read-only file system": that is
the right mode for content that must not change, such as Posit Connect
content and other shared hosts.

Deletes are guarded: the mount deletes (and renames away) only files and
directories it wrote itself; removing or renaming any other object fails
with "Operation not permitted", so a stray "rm -rf" cannot empty a bucket.
--allow-delete lifts the guard.

Credentials come from the standard AWS sources, in order: AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), the shared config and
credentials files (--profile or AWS_PROFILE), web identity (AWS_ROLE_ARN with
AWS_WEB_IDENTITY_TOKEN_FILE), the container endpoint, and the EC2 instance
role through instance metadata. The region comes from --region, AWS_REGION,
AWS_DEFAULT_REGION, the profile, instance metadata, else us-east-1.

Examples:
  bucketfs mount /mnt/s3
  bucketfs mount s3://my-bucket /mnt/my-bucket
  bucketfs mount s3://my-bucket/data/2024 /mnt/data --metadata-ttl 5m
  bucketfs mount --endpoint-url http://127.0.0.1:7070 --path-style /mnt/s3
  AWS_PROFILE=analytics bucketfs mount --cache-size 2GiB /mnt/s3

Flags:
`

// mountConfig is everything the mount command was told.
type mountConfig struct {
	Bucket, Prefix string // empty Bucket: all buckets
	MountPoint     string

	connFlags
	identityFlags // --identity, --identities (peruser.go)
	ReadOnly      bool
	AllowDelete   bool
	AllowOther    bool
	Foreground    bool

	UID, GID          int
	FileMode, DirMode uint32
	CacheSize         int64
	MetadataSize      int64  // --metadata-cache-size
	CacheDir          string // --cache-dir: "" for the user's cache directory
	StagingSize       int64
	DiskCache         string // --disk-cache: "" for no disk tier
	DiskCacheSize     int64  // --disk-cache-size
	MetadataTTL       time.Duration
	RequestTimeout    time.Duration
	StallTimeout      time.Duration
	LogLevel, LogFile string
	MetricsAddr       string // --metrics-addr: "" for off
}

// source is how the mount names what it shows, e.g. in /proc/mounts.
func (c mountConfig) source() string {
	if c.Bucket == "" {
		return "bucketfs"
	}
	return "s3://" + c.Bucket + "/" + c.Prefix
}

// mountFlags is the flag set of "bucketfs mount", filling c.
func mountFlags(c *mountConfig) *flag.FlagSet {
	fs := newFlagSet("mount")
	c.connFlags.register(fs)
	c.identityFlags.register(fs)
	fs.BoolVar(&c.ReadOnly, "read-only", false, "refuse every change with EROFS (Read-only file system); the right mode for Posit Connect content and other data that must not change")
	fs.BoolVar(&c.AllowDelete, "allow-delete", false, "let rm, rmdir and mv delete objects this mount did not write (default: only its own files and directories; any other delete fails with EPERM)")
	fs.BoolVar(&c.AllowOther, "allow-other", false, "let other users use the mount (needs user_allow_other in /etc/fuse.conf for non-root); every request is signed with the mounter's credentials")
	fs.BoolVar(&c.Foreground, "foreground", false, "stay attached; unmount on SIGINT/SIGTERM")
	fs.IntVar(&c.UID, "uid", c.UID, "owner `uid` of every file and directory")
	fs.IntVar(&c.GID, "gid", c.GID, "group `gid` of every file and directory")
	fs.Var(modeValue{&c.FileMode}, "file-mode", "permission `mode` of files, octal (default 0644, 0444 with --read-only)")
	fs.Var(modeValue{&c.DirMode}, "dir-mode", "permission `mode` of directories, octal (default 0755, 0555 with --read-only)")
	fs.Var(sizeValue{&c.CacheSize}, "cache-size", "`size` of memory for cached file data, e.g. 512MiB, 2GiB")
	fs.Var(sizeValue{&c.MetadataSize}, "metadata-cache-size", "`size` of memory for cached listings and file attributes, e.g. 128MiB; a walk of more names than fit still works, listing evicted directories again when they are read again")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "`directory` for files being written (staged until uploaded); default the user's cache dir bucketfs/staging")
	fs.Var(sizeValue{&c.StagingSize}, "staging-size", "`size` of disk that files being written may take in --cache-dir; writes beyond it fail with ENOSPC")
	fs.StringVar(&c.DiskCache, "disk-cache", "", "keep blocks of file data read or written in `directory` too, across unmounts and restarts (a local disk, e.g. $XDG_CACHE_HOME/bucketfs/blocks or /var/tmp/bucketfs-$USER); default off")
	fs.Var(sizeValue{&c.DiskCacheSize}, "disk-cache-size", "`size` of disk that --disk-cache may take, least recently used blocks evicted first")
	fs.Var(durationValue{&c.MetadataTTL}, "metadata-ttl", "`duration` for which listings and file attributes are trusted before asking S3 again, e.g. 60s, 5m")
	fs.Var(durationValue{&c.RequestTimeout}, "request-timeout", "`duration` after which a request to S3 that keeps failing or hangs gives up, with retries, and the file operation fails with EIO")
	fs.Var(defaultedDuration{durationValue{&c.StallTimeout}, cache.DefaultStallTimeout}, "stall-timeout", "`duration` after which a download that stopped moving is cut and the missing part asked for again")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "`level`: debug, info, warn or error")
	fs.StringVar(&c.LogFile, "log-file", "", "write logs to `path` (default: stderr with --foreground, else the user's cache dir bucketfs/bucketfs.log)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics, and the Go profiler under /debug/pprof/ (default off; use 127.0.0.1:PORT)")
	return fs
}

func parseMountArgs(args []string, stdout io.Writer) (mountConfig, error) {
	c := mountConfig{
		UID:            os.Getuid(),
		GID:            os.Getgid(),
		CacheSize:      cache.DefaultDataBytes,
		MetadataSize:   cache.DefaultMetadataBytes,
		StagingSize:    stage.DefaultLimit,
		DiskCacheSize:  disk.DefaultLimit,
		MetadataTTL:    cache.DefaultMetadataTTL,
		RequestTimeout: cache.DefaultRequestTimeout,
		LogLevel:       "info",
	}
	fs := mountFlags(&c)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if isHelp(err) {
			fmt.Fprint(stdout, mountUsage)
			printFlags(stdout, fs)
			return c, err
		}
		return c, usageError{err.Error()}
	}
	switch len(pos) {
	case 1:
		c.MountPoint = pos[0]
	case 2:
		if c.Bucket, c.Prefix, err = parseS3URL(pos[0]); err != nil {
			return c, err
		}
		c.MountPoint = pos[1]
	case 0:
		return c, usagef("missing MOUNTPOINT")
	default:
		return c, usagef("too many arguments %q: want [s3://BUCKET[/PREFIX]] MOUNTPOINT", pos)
	}
	perUserModes(&c)
	if c.FileMode == 0 {
		c.FileMode = 0o644
		if c.ReadOnly {
			c.FileMode = 0o444
		}
	}
	if c.DirMode == 0 {
		c.DirMode = 0o755
		if c.ReadOnly {
			c.DirMode = 0o555
		}
	}
	if c.ReadOnly && c.AllowDelete {
		return c, usagef("--allow-delete and --read-only contradict each other: a read-only mount deletes nothing; drop one")
	}
	if !c.ReadOnly && c.StagingSize < 1<<20 {
		return c, usagef("--staging-size %s is too small: give at least 1MiB", units.FormatSize(c.StagingSize))
	}
	if c.MetadataTTL <= 0 {
		return c, usagef("--metadata-ttl must be positive")
	}
	if c.RequestTimeout < time.Second {
		return c, usagef("--request-timeout must be at least 1s")
	}
	if c.StallTimeout != 0 && c.StallTimeout < 100*time.Millisecond {
		return c, usagef("--stall-timeout must be at least 100ms")
	}
	if c.CacheSize < cache.DefaultBlockSize {
		return c, usagef("--cache-size %s is too small: give at least 1MiB", units.FormatSize(c.CacheSize))
	}
	if c.DiskCacheSize < 16<<20 {
		return c, usagef("--disk-cache-size %s is too small: give at least 16MiB", units.FormatSize(c.DiskCacheSize))
	}
	if c.MetadataSize < 1<<20 {
		return c, usagef("--metadata-cache-size %s is too small: give at least 1MiB", units.FormatSize(c.MetadataSize))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return c, err
	}
	if err := c.connFlags.check(); err != nil {
		return c, err
	}
	if err := checkMetricsAddr(c.MetricsAddr); err != nil {
		return c, err
	}
	if c.DiskCache != "" {
		// Absolute now: the daemon works from "/".
		if c.DiskCache, err = filepath.Abs(c.DiskCache); err != nil {
			return c, usagef("--disk-cache %q: %v", c.DiskCache, err)
		}
	}
	if err := checkIdentity(c); err != nil {
		return c, err
	}
	return c, nil
}

// parseS3URL splits s3://bucket/prefix into bucket and a prefix that is ""
// or ends in "/".
func parseS3URL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", usagef("%q is not an s3:// URL: want s3://BUCKET[/PREFIX] MOUNTPOINT", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", usagef("%q names no bucket: want s3://BUCKET[/PREFIX]", s)
	}
	prefix = strings.Trim(prefix, "/")
	for _, seg := range strings.Split(prefix, "/") {
		if prefix != "" && (seg == "" || seg == "." || seg == "..") {
			return "", "", usagef("prefix %q has an empty, \".\" or \"..\" segment", prefix)
		}
	}
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

func mountCommand(args []string, stdout, stderr io.Writer) error {
	c, err := parseMountArgs(args, stdout)
	if err != nil {
		return err
	}
	mp, err := checkMountPoint(c.MountPoint)
	if err != nil {
		return err
	}
	c.MountPoint = mp
	if err := checkAllowOther(c); err != nil {
		return err
	}
	if err := checkIdentityRoot(c); err != nil {
		return err
	}
	if !c.Foreground && os.Getenv(notifyEnv) == "" {
		return startDaemon(args, stderr)
	}
	return serve(c, stderr)
}

// checkMountPoint makes the path absolute and checks that it is an empty
// directory we may mount on. A dead bucketfs mount left by a killed daemon
// ("Transport endpoint is not connected") is cleared first.
func checkMountPoint(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	// statfs reaches the daemon even when the kernel still has the root's
	// attributes cached, so it notices a dead mount at once.
	if isDeadMount(abs) {
		if uerr := unmount(abs, true); uerr != nil {
			return "", fmt.Errorf("%s is a dead mount (Transport endpoint is not connected) and clearing it failed: %v; run: fusermount3 -u %s", abs, uerr, abs)
		}
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("mount point %s does not exist: create it with mkdir -p %s", abs, abs)
	case err != nil:
		return "", fmt.Errorf("mount point %s: %v", abs, err)
	case !st.IsDir():
		return "", fmt.Errorf("mount point %s is not a directory", abs)
	}
	if e, _ := mountEntry(abs); e.fstype != "" {
		return "", fmt.Errorf("%s is already a mount point (%s): unmount it first with bucketfs unmount %s", abs, e.fstype, abs)
	}
	return abs, nil
}

// openLog returns the logger for a mount and what to close afterwards.
// A daemon in the background (background) has no terminal: without
// --log-file it logs to the user's cache directory.
func openLog(c mountConfig, stderr io.Writer, background bool) (*slog.Logger, io.Closer, error) {
	level, _ := parseLevel(c.LogLevel)
	var w io.Writer = stderr
	var closer io.Closer = io.NopCloser(nil)
	path := c.LogFile
	if path == "" && background {
		if dir, err := os.UserCacheDir(); err == nil {
			path = filepath.Join(dir, "bucketfs", "bucketfs.log")
			_ = os.MkdirAll(filepath.Dir(path), 0o700)
		}
	}
	if path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot open --log-file %s: %v", path, err)
		}
		w, closer = f, f
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), closer, nil
}

// serve mounts and serves until unmounted or signalled. When started by
// startDaemon it reports readiness (or the one-line failure) through the
// notify pipe instead of stderr.
func serve(c mountConfig, stderr io.Writer) (err error) {
	notify := openNotify()
	defer func() {
		if notify != nil {
			notify.fail(err)
		}
	}()
	log, closer, err := openLog(c, stderr, notify != nil)
	if err != nil {
		return err
	}
	defer closer.Close()
	// Keep no directory busy: a daemon whose cwd is under a mount blocks
	// unmounting it.
	_ = os.Chdir("/")

	// Metrics (metrics.go) count from the first request; their port is
	// taken before anything is mounted, so a busy one fails the mount.
	m := newMountMetrics(c)
	ln, err := listenMetrics(c.MetricsAddr)
	if err != nil {
		return err
	}
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if ln != nil {
		go serveMetrics(mctx, m, ln, log)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := auth.Load(ctx, auth.Options{Profile: c.Profile, Region: c.Region, EndpointURL: c.Endpoint, Credentials: c.Credentials, Logger: log,
		OnRefresh: m.CredentialRefreshed})
	if err != nil {
		return errors.New(auth.Explain(err))
	}
	m.SetCredentials(a.Source, a.Expires)
	var base store.ObjectStore = s3.New(a.Config, s3.Options{Endpoint: a.Endpoint, PathStyle: c.PathStyle, Logger: log})
	var ids *identity.Set // per-user identity (peruser.go)
	if c.perUser() {
		if ids, base, err = openIdentities(c, a, log); err != nil {
			return err
		}
		m.SetIdentityStats(identityStats(ids))
	}
	// Everything above the store, the cache included, goes through the
	// metered store, so every request is counted.
	st := metered.New(base, m, log)
	warning, err := "", error(nil)
	if ids == nil { // a per-user mount has no identity of its own to check
		warning, err = preflight(ctx, st, c)
	}
	if err != nil {
		return explainPreflight(err, a.Endpoint)
	}
	warnUser(warning, notify, stderr, log)
	log.Info("credentials ready", "source", a.Source, "region", a.Region, "region_from", a.RegionSource, "endpoint", a.Endpoint)

	dc, warning, err := openDiskCache(c, log)
	if err != nil {
		return err
	}
	defer closeDiskCache(dc)
	warnUser(warning, notify, stderr, log)
	ch := cache.New(st, cache.Config{DataBytes: c.CacheSize, MetadataBytes: c.MetadataSize, MetadataTTL: c.MetadataTTL, RequestTimeout: c.RequestTimeout, StallTimeout: c.StallTimeout, Logger: log, Disk: dc,
		Scope: cacheScope(ids)})
	defer ch.Close()
	limitMemory(ch.Config(), log)
	m.SetCacheStats(cacheStats(ch))
	m.SetDiskStats(diskStats(ch))
	tracker := newTracker(ch.Config(), m, log)
	go tracker.Run(mctx, time.Second)
	fcfg := fusefs.Config{
		Bucket: c.Bucket, Prefix: c.Prefix,
		UID: uint32(c.UID), GID: uint32(c.GID),
		FileMode: c.FileMode, DirMode: c.DirMode,
		Logger:  log,
		Status:  m.StatusFiles(tracker),
		Tracker: tracker,
		// The kernel's file inodes scale with the metadata bound: one per
		// KiB of it (~450 bytes each); past it the kernel is asked to
		// forget those it was given least recently.
		PlusFiles: int(c.MetadataSize >> 10),
		Context:   mctx,
	}
	var area *stage.Area
	if !c.ReadOnly {
		// The S3 store writes, and so its metered wrapper; every write goes
		// through the cache's writer, which keeps the cache true.
		w, _ := ch.Writer()
		if area, err = openStaging(c, w, ch.Landed, log); err != nil {
			return err
		}
		fcfg.Writer, fcfg.Staging = w, area
		if ids != nil {
			fcfg.Identities = writerIdentities(ids)
		}
		fcfg.AllowDelete = c.AllowDelete
		if !c.AllowDelete {
			log.Info("deletes guarded: this mount deletes only what it wrote itself; --allow-delete lifts it")
		}
	}
	if ids != nil {
		fcfg.Status = m.StatusFiles(nil) // no other user's paths in flight
		fcfg.CallerOwns = true           // each user's files show as theirs (peruser.go)
	}
	root := fusefs.New(ch, fcfg)
	opts := fusefs.Options(ch)
	opts.MountOptions = fuse.MountOptions{
		FsName:        c.source(),
		Name:          "bucketfs",
		AllowOther:    c.AllowOther,
		Options:       mountOptions(c),
		MaxWrite:      1 << 20,
		MaxReadAhead:  1 << 20,
		MaxBackground: 64,
		DisableXAttrs: true,
		DirectMount:   os.Geteuid() == 0,
		// What fusermount3 would set, plus read-only for the mount itself.
		DirectMountFlags: directMountFlags(c),
		// O_TRUNC comes with the open, so a file opened to be replaced is
		// not fetched first only to be emptied. Descriptors that write
		// bypass the page cache (FOPEN_DIRECT_IO); kernels from 6.6 on
		// still let them be mapped shared.
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
	}
	if ids != nil {
		perUserKernel(opts)
	}
	// Catch the signals before the mount exists: a SIGTERM (systemd, a
	// quick `bucketfs unmount`) or SIGHUP arriving between the mount and
	// signal.Notify would otherwise kill the daemon and leave the mount
	// disconnected. Signals that come before the loop below are kept.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	server, err := fs.Mount(c.MountPoint, root, opts)
	if err != nil {
		return mountError(c, err)
	}
	log.Info("mounted", "source", c.source(), "mountpoint", c.MountPoint)
	raiseKernelReadAhead(c.MountPoint, log)
	if notify != nil {
		notify.ready()
		notify = nil
	}
	sdNotifyReady(c, log)

	go func() {
		for s := range sig {
			if s == syscall.SIGHUP && ids != nil {
				reloadIdentities(ids, log)
				continue
			}
			log.Info("unmounting on signal", "signal", s.String())
			if err := server.Unmount(); err != nil {
				log.Warn("unmount failed; files may still be open", "err", err)
				continue
			}
			return
		}
	}()
	server.Wait()
	if area != nil {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		kept := fusefs.Drain(dctx, root)
		dcancel()
		if len(kept) > 0 {
			log.Error("files that could not be uploaded are kept in the staging directory", "dir", area.Dir(), "files", len(kept))
		}
		_ = area.Close()
	}
	cs := ch.Stats()
	log.Info("unmounted", append([]any{"mountpoint", c.MountPoint, "block_hits", cs.BlockHits, "block_misses", cs.BlockMisses,
		"gets", cs.Requests, "bytes_fetched", cs.BytesRead}, diskAttrs(ch)...)...)
	return nil
}

// newTracker makes the watchdog of the file operations in flight, counted
// in m. An operation is stuck when it has waited longer than any of its
// store calls may: one call of its own and one it may wait for that
// another request started, each bounded by the request timeout, plus a
// margin. Operations that upload a file written may take longer.
func newTracker(cc cache.Config, m *metrics.Metrics, log *slog.Logger) *watchdog.Tracker {
	upload := time.Hour
	t := watchdog.New(watchdog.Config{
		StuckAfter: 2*cc.RequestTimeout + 10*time.Second,
		Patience:   map[string]time.Duration{"flush": upload, "fsync": upload, "release": upload},
		Logger:     log,
		Observer:   m,
	})
	m.WatchInFlight(t)
	return t
}

// preflight checks, before anything is mounted, that the credentials work
// and the bucket is there, so a bad key gives a clear error and no mount.
// A problem that leaves the mount useful gives a warning instead.
func preflight(ctx context.Context, st store.ObjectStore, c mountConfig) (warning string, err error) {
	if c.Bucket == "" {
		_, err := st.ListBuckets(ctx)
		if errors.Is(err, store.ErrAccessDenied) {
			// Valid credentials without s3:ListAllMyBuckets: buckets are
			// still reachable by name, the root just cannot be listed.
			return fmt.Sprintf("these credentials may not list buckets (s3:ListAllMyBuckets), so ls %s will fail; "+
				"buckets you can read are still reachable as %s/BUCKET, or mount one with s3://BUCKET", c.MountPoint, c.MountPoint), nil
		}
		return "", err
	}
	_, err = st.List(ctx, store.ListInput{Bucket: c.Bucket, Prefix: c.Prefix, Delimiter: "/", MaxKeys: 1})
	if errors.Is(err, store.ErrNotFound) {
		return "", finalError{fmt.Sprintf("bucket %q does not exist (or is in another account): check the name in s3://%s", c.Bucket, c.Bucket)}
	}
	return "", err
}

// finalError is a message already fit for the user.
type finalError struct{ msg string }

func (e finalError) Error() string { return e.msg }

// explainPreflight turns a failed first request into one line: credential
// and permission problems through auth.Explain, anything else as a
// connection problem with its innermost cause.
func explainPreflight(err error, endpoint string) error {
	var fe finalError
	switch {
	case errors.As(err, &fe), errors.Is(err, store.ErrWrongRegion):
		return err
	case errors.Is(err, store.ErrAuth), errors.Is(err, store.ErrAccessDenied), errors.Is(err, store.ErrNotFound):
		return errors.New(auth.Explain(err))
	}
	if endpoint == "" {
		endpoint = "AWS"
	}
	cause := err
	for {
		next := errors.Unwrap(cause)
		if next == nil {
			break
		}
		cause = next
	}
	return fmt.Errorf("cannot reach S3 at %s (%v): check --endpoint-url, the network and any proxy settings", endpoint, cause)
}

func mountError(c mountConfig, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fusermount") && strings.Contains(msg, "not found"),
		strings.Contains(msg, "no FUSE mount utility"):
		return fmt.Errorf("cannot mount %s: fusermount3 is missing: install the fuse3 package", c.MountPoint)
	case strings.Contains(msg, "permission denied") || strings.Contains(msg, "Operation not permitted"):
		return fmt.Errorf("cannot mount %s: %v: check that /dev/fuse is readable and writable by you and that you own the mount point", c.MountPoint, err)
	case strings.Contains(msg, "allow_other"):
		return fmt.Errorf("cannot mount %s with --allow-other: add user_allow_other to /etc/fuse.conf, or mount as root", c.MountPoint)
	}
	return fmt.Errorf("cannot mount %s: %v", c.MountPoint, err)
}

// memoryOverhead is what the daemon needs beyond the data cache, the
// metadata cache and the GETs in flight: the kernel's inodes (go-fuse
// keeps a node for each name the kernel holds), buffers, the Go runtime.
const memoryOverhead = 128 << 20

// limitMemory tells the Go runtime how much memory the daemon is meant to
// use, so garbage (every block passes through a run buffer) is collected
// before the heap grows far past the cache size. GOMEMLIMIT, if set, wins.
func limitMemory(cc cache.Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := cc.DataBytes + cc.MetadataBytes + cc.ReceiveBytes() + cc.DiskBytes() + memoryOverhead
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit", "bytes", limit)
}

// mountOptions are the FUSE mount options: "ro" for a read-only mount, so
// the kernel refuses changes before they reach the daemon.
func mountOptions(c mountConfig) []string {
	if c.ReadOnly {
		return []string{"ro", "default_permissions"}
	}
	return []string{"default_permissions"}
}

func directMountFlags(c mountConfig) uintptr {
	flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV)
	if c.ReadOnly {
		flags |= syscall.MS_RDONLY
	}
	return flags
}

// stagingBases are the directories a mount may stage files being written
// in, in order: --cache-dir; else the user's cache directory, then (for
// users without a usable home, such as service accounts) a directory of
// their own under the system's temporary directory.
func stagingBases(c mountConfig) []string {
	if c.CacheDir != "" {
		return []string{c.CacheDir}
	}
	if c.perUser() {
		return []string{perUserStagingBase}
	}
	var bases []string
	if dir, err := os.UserCacheDir(); err == nil {
		bases = append(bases, filepath.Join(dir, "bucketfs"))
	}
	// TMPDIR may name a directory the user cannot write (a parent's TMPDIR
	// inherited across su or runuser); /tmp is the last resort.
	for _, tmp := range []string{os.TempDir(), "/tmp"} {
		if b := filepath.Join(tmp, fmt.Sprintf("bucketfs-%d", os.Getuid())); !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
	}
	return bases
}

// stagingDir is where this mount stages files below base: a directory of
// its own named after the mount point, the time and the process, so two
// mounts never share one and leftovers of an earlier mount are never
// mixed in.
func stagingDir(base string, c mountConfig, now time.Time) string {
	name := strings.Trim(strings.ReplaceAll(filepath.Clean(c.MountPoint), "/", "-"), "-")
	if name == "" {
		name = "root"
	}
	id := fmt.Sprintf("%s-%s-%d", name, now.UTC().Format("20060102T150405"), os.Getpid())
	return filepath.Join(base, "staging", id)
}

func openStaging(c mountConfig, w store.Writer, landed func(bucket, key string, o store.Object, r io.ReaderAt), log *slog.Logger) (*stage.Area, error) {
	var errs []string
	for i, base := range stagingBases(c) {
		if i > 0 {
			// Under a shared temporary directory, someone else may have
			// made the directory first: use it only if it is ours alone.
			if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				errs = append(errs, err.Error())
				continue
			}
			if fi, err := os.Lstat(base); err != nil || !ownedDir(fi) {
				errs = append(errs, base+" is not a directory of this user's alone")
				continue
			}
		}
		sweepStaging(base, log)
		dir := stagingDir(base, c, time.Now())
		// A part (16 MiB) gets the request timeout plus time to move at
		// a slow 256 KiB/s.
		area, err := stage.Open(stage.Config{Dir: dir, Limit: c.StagingSize, Writer: w, PartTimeout: c.RequestTimeout + time.Minute, Logger: log, Landed: landed,
			UserLimit: c.StagingSizePerUser})
		if err == nil && c.perUser() {
			err = openUserStaging(base)
		}
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if i > 0 {
			log.Warn("the user's cache directory is not usable; files being written are staged in the temporary directory instead (pass --cache-dir to choose)",
				"dir", dir, "errors", strings.Join(errs, "; "))
		}
		log.Info("writes are staged", "dir", dir, "limit", c.StagingSize)
		return area, nil
	}
	return nil, fmt.Errorf("cannot prepare a staging directory for writes (%s): pass --cache-dir DIR, or --read-only", strings.Join(errs, "; "))
}

// ownedDir reports whether fi is a real directory (not a link) owned by this
// process's user that nobody else may write to.
func ownedDir(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 && int(st.Uid) == os.Getuid() && fi.Mode().Perm()&0o022 == 0
}
