package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/bucketfs/bucketfs/auth"
	"github.com/bucketfs/bucketfs/identity"
	"github.com/bucketfs/bucketfs/internal/units"
	"github.com/bucketfs/bucketfs/metrics"
	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/s3"
)

// Per-user identity (bucketfs mount --identity per-user): one shared mount,
// each request signed as the Linux user who made it (package identity).

// Identity modes.
const (
	identityMount   = "mount" // every request signed with the mount's credentials (the default)
	identityPerUser = "per-user"
)

type identityFlags struct {
	Identity   string // --identity
	Identities string // --identities
	// --staging-size-per-user: 0 is stage.DefaultUserShare of --staging-size.
	StagingSizePerUser int64
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.Identity, "identity", "", "`mode`: mount (the default: every request signed with the mount's credentials) or per-user (each request signed as the user who made it, from --identities; run by root with --allow-other)")
	fs.StringVar(&f.Identities, "identities", "", "with --identity per-user, the root-owned `file` mapping users and groups to their AWS identity (default "+identity.DefaultPath+")")
	fs.Var(sizeValue{&f.StagingSizePerUser}, "staging-size-per-user", "with --identity per-user, `size` of --staging-size one user's files being written may take, so no user fills it for everyone; beyond it that user's writes fail with ENOSPC (default half of --staging-size)")
}

func (f identityFlags) perUser() bool { return f.Identity == identityPerUser }

// checkIdentity validates the per-user flags against the rest.
func checkIdentity(c mountConfig) error {
	switch c.Identity {
	case identityMount, "":
		if c.StagingSizePerUser != 0 {
			return usagef("--staging-size-per-user bounds each user of a per-user mount: add --identity per-user, or drop it and use --staging-size")
		}
		return nil
	case identityPerUser:
	default:
		return usagef("--identity %q: use mount or per-user", c.Identity)
	}
	switch {
	case !c.AllowOther:
		return usagef("--identity per-user serves every user of the host: add --allow-other")
	case c.Bucket != "":
		return usagef("--identity per-user mounts every bucket (each user sees their own): drop s3://%s", c.Bucket)
	case c.StagingSizePerUser != 0 && c.StagingSizePerUser < 1<<20:
		return usagef("--staging-size-per-user %s is too small: give at least 1MiB", units.FormatSize(c.StagingSizePerUser))
	case c.StagingSizePerUser > c.StagingSize:
		return usagef("--staging-size-per-user %s is more than --staging-size %s, which bounds all users together: lower it, or raise --staging-size",
			units.FormatSize(c.StagingSizePerUser), units.FormatSize(c.StagingSize))
	}
	return nil
}

// checkIdentityRoot refuses per-user mode to anyone but root: it runs
// helpers as other users and serves all of them.
func checkIdentityRoot(c mountConfig) error {
	if c.perUser() && os.Geteuid() != 0 {
		return fmt.Errorf("--identity per-user must run as root (it acts for every user of the host): mount it from /etc/fstab or the systemd unit")
	}
	return nil
}

// openIdentities loads the rules and returns the Set and the store that
// signs each request as its caller, over the host's configuration a.
func openIdentities(c mountConfig, a auth.Result, log *slog.Logger) (*identity.Set, store.ObjectStore, error) {
	set, err := identity.New(identity.Options{Path: c.Identities, Host: a.Config, Caller: fuseCaller, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	router := identity.NewRouter(set, func(p *identity.Principal) identity.Backend {
		cfg := a.Config.Copy()
		cfg.Credentials = p.Credentials
		return s3.New(cfg, s3.Options{Endpoint: a.Endpoint, PathStyle: c.PathStyle, Logger: log})
	})
	log.Info("per-user identity", "rules", len(set.Rules()), "file", set.Path(), "host_credentials", a.Source)
	return set, router, nil
}

// perUserModes are the permission bits of a writable per-user mount unless
// --file-mode or --dir-mode say otherwise: everyone may write as far as the
// kernel is concerned (files and directories show the caller as owner,
// fusefs.Config.CallerOwns), because S3 decides, with each writer's own
// identity, what they may change.
func perUserModes(c *mountConfig) {
	if !c.perUser() || c.ReadOnly {
		return
	}
	if c.FileMode == 0 {
		c.FileMode = 0o666
	}
	if c.DirMode == 0 {
		c.DirMode = 0o777
	}
}

// writerIdentities is the namespace's writer of a change on a per-user
// mount: the caller's user (refused, EACCES, without an identity), whose
// identity uploads made later and parts sent in the background carry. The
// caller is resolved once per request: the context returned carries the
// principal, which the cache's scope (cacheScope) and later calls read
// (identity/caller.go, which also says why the writer's key is the Linux
// user and the cache's the principal).
func writerIdentities(set *identity.Set) func(ctx context.Context) (context.Context, namespace.Identity, error) {
	return func(ctx context.Context) (context.Context, namespace.Identity, error) {
		ctx, p, err := set.Within(ctx)
		if err != nil {
			return ctx, namespace.Identity{}, err
		}
		return ctx, namespace.Identity{Key: p.Owner, UID: p.User.UID, GID: p.User.GID, Name: p.User.Name, Ctx: p.Background}, nil
	}
}

// perUserStagingBase is where a per-user mount stages without --cache-dir:
// on local disk, on a path every user may pass through to reach their own
// directory (stage.Area.For), unlike root's home.
const perUserStagingBase = "/var/cache/bucketfs"

// openUserStaging lets users through base/staging (and base, when it is
// perUserStagingBase: --cache-dir's modes are the administrator's) to
// their own staging directories (the mount's is made 0711 by
// stage.Area.For), so each can recover what could not be uploaded.
func openUserStaging(base string) error {
	dirs := []string{filepath.Join(base, "staging")}
	if base == perUserStagingBase {
		dirs = append(dirs, base)
	}
	for _, d := range dirs {
		if err := os.Chmod(d, 0o711); err != nil {
			return fmt.Errorf("staging directory: %w", err)
		}
	}
	return nil
}

// fuseCaller is the caller of a FUSE request.
func fuseCaller(ctx context.Context) (identity.Caller, bool) {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return identity.Caller{}, false
	}
	return identity.Caller{UID: c.Uid, GID: c.Gid, PID: c.Pid}, true
}

// cacheScope is cache.Config.Scope for set (nil without per-user identity).
func cacheScope(set *identity.Set) func(context.Context) (string, error) {
	if set == nil {
		return nil
	}
	return set.Scope
}

// perUserKernel makes the kernel ask the daemon for every lookup of a
// name, so each user's path walk is answered with their own identity:
// nothing one user's lookup taught the kernel (an entry, an absence)
// serves another. Attributes are kept for one nanosecond (AttrTimeout),
// which the kernel rounds up to the end of its current clock tick (1-4
// ms): they name the caller as the owner (fusefs.Config.CallerOwns), and
// the LOOKUP of the walk that reached the inode has just brought them, as
// this caller's, for the permission checks and the stat that follow it
// at once. A timeout of 0 would send a GETATTR after every LOOKUP (the
// kernel takes 0 as "already stale"): twice the requests of ls -lR. What
// one user's answer may show another, if it lands on the same inode
// between the other's LOOKUP and stat, or before an fstat, within that
// tick, is that user's uid and gid as the owner: nothing else in the
// attributes differs between users (an inode is one version of one
// object, or a directory, and a process reaches it only through a lookup
// of its own or a descriptor it opened after open's check). The mount's
// root, the same for everyone, keeps its attributes and shows the mount's
// owner (fusefs dirNode.Getattr of the root). Directory contents are
// never cached by the kernel (no FOPEN_CACHE_DIR); pages of a file are kept only for opens that passed
// the opener's own check (namespace.File.Open).
//
// Extended attributes are answered (EOPNOTSUPP, fusefs), not refused with
// ENOSYS: ls -l asks for the POSIX ACL of every file it lists, and each ask
// is a path walk, a LOOKUP of every component, unless the answer is
// EOPNOTSUPP, after which ls stops asking (see fusefs's node.Getxattr).
// Measured, not assumed: answering xattrs does not make the kernel ask for
// security.capability at each WRITE (writers have direct I/O, fusefs): it
// sent 1 GETXATTR against 49 WRITEs over the whole of e2e TestPerUserWrites
// (kernel 6.18, fuse_request_send trace points; docs/BENCHMARKS.md).
func perUserKernel(o *fs.Options) {
	var zero time.Duration
	o.EntryTimeout, o.NegativeTimeout = &zero, &zero
	tick := time.Nanosecond
	o.AttrTimeout = &tick
	o.MountOptions.DisableXAttrs = false
	// Directory reads give names only (READDIR): the entries and
	// attributes READDIRPLUS would add are kept for no time, and every
	// stat that follows looks the name up anyway.
	o.MountOptions.DisableReadDirPlus = true
}

// reloadIdentities is what SIGHUP does to a per-user mount.
func reloadIdentities(set *identity.Set, log *slog.Logger) {
	if err := set.Reload(); err != nil {
		log.Error("reloading the identity rules failed; the rules in force stay", "err", err)
	}
}

// identityStats feeds metrics and status from set.
func identityStats(set *identity.Set) func() metrics.IdentityStats {
	return func() metrics.IdentityStats {
		s := set.Stats()
		return metrics.IdentityStats{Rules: s.Rules, InUse: s.InUse, BySource: s.BySource,
			Refreshes: s.Refreshes, RefreshFailures: s.RefreshFailures, Denied: s.Denied, Reloads: s.Reloads}
	}
}

// whoamiUser turns the host's a into the identity --user gets under the
// rules (bucketfs whoami --user NAME), retrieving its credentials once.
func whoamiUser(ctx context.Context, c whoamiConfig, a auth.Result, r *whoamiReport) (auth.Result, error) {
	if os.Geteuid() != 0 {
		return a, fmt.Errorf("whoami --user must run as root: it reads the identity rules and acts as the user")
	}
	set, err := identity.New(identity.Options{Path: c.Identities, Host: a.Config})
	if err != nil {
		return a, err
	}
	p, err := set.ForUser(c.User)
	if err != nil {
		return a, err
	}
	r.Source = p.Source()
	cr, err := p.Credentials.Retrieve(ctx)
	if err != nil {
		return a, fmt.Errorf("%v: check the rule on line %d of %s", err, p.Rule.Line, set.Path())
	}
	a.Config = a.Config.Copy()
	a.Config.Credentials = p.Credentials
	a.Expires = p.Expires() // the real expiry, not the refresh time
	if !cr.CanExpire {
		a.Expires = time.Time{}
	}
	return a, nil
}
