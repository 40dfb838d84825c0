package csi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

// record is what the driver keeps of one published target in its state
// directory, so that a restarted driver knows its mounts: to unpublish
// them, to serve their metrics, and to mount again one whose daemon died.
// It holds no secret: access keys and tokens are in 0600 files beside it.
type record struct {
	VolumeID    string   `json:"volume_id"`
	Target      string   `json:"target"`
	Source      string   `json:"source"` // s3://BUCKET[/PREFIX] or "" for every bucket
	Flags       []string `json:"flags"`  // from the volume's options
	ReadOnly    bool     `json:"read_only"`
	Identity    string   `json:"identity"`
	RoleARN     string   `json:"role_arn,omitempty"`
	Session     string   `json:"session,omitempty"` // role session name for identity pod
	MetricsAddr string   `json:"metrics_addr"`
	Mounted     string   `json:"mounted"` // when, RFC 3339
}

// state is the driver's directory on the node's disk (a hostPath, so it
// outlives the driver's container):
//
//	volumes/KEY.json    the record of the target whose hash is KEY
//	volumes/KEY.keys    its access keys (identity secret), 0600
//	volumes/KEY.token   its pod's service-account token (identity pod), 0600
//	logs/KEY.log        the mount's log
//	staging/            files being written, one directory per mount
type state struct{ dir string }

func (s state) key(target string) string {
	h := sha256.Sum256([]byte(target))
	return hex.EncodeToString(h[:8])
}

func (s state) path(kind, target, ext string) string {
	return filepath.Join(s.dir, kind, s.key(target)+ext)
}

func (s state) init() error {
	for _, d := range []string{"", "volumes", "logs", "staging"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return fmt.Errorf("cannot create the state directory: %v", err)
		}
	}
	return nil
}

// writeFile writes data to path, 0600, through a temporary file and a
// rename, so a reader (the mount's credential refresh) never sees half.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s state) save(r record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(s.path("volumes", r.Target, ".json"), data)
}

func (s state) load(target string) (record, bool, error) {
	data, err := os.ReadFile(s.path("volumes", target, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, false, fmt.Errorf("state file of %s: %v", target, err)
	}
	return r, true, nil
}

// all returns every record, in no particular order.
func (s state) all() ([]record, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, "volumes", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []record
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var r record
		if json.Unmarshal(data, &r) == nil && r.Target != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// forget removes a target's record and its credential files.
func (s state) forget(target string) {
	for _, ext := range []string{".json", ".keys", ".token"} {
		_ = os.Remove(s.path("volumes", target, ext))
	}
}

// mountState says what is mounted at a target.
type mountState int

const (
	notMounted   mountState = iota
	mountedOK               // a live bucketfs mount
	mountedDead             // a bucketfs mount whose daemon is gone
	mountedOther            // some other file system
)

func (m mountState) String() string {
	return [...]string{"not mounted", "mounted", "a dead mount", "another file system"}[m]
}

// inspect reads /proc/self/mountinfo for target.
func inspect(target string) (mountState, string, error) {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != target, false
	})
	if err != nil {
		return notMounted, "", err
	}
	if len(ms) == 0 {
		return notMounted, "", nil
	}
	fstype := ms[len(ms)-1].FSType // the last one is the visible one
	if fstype != "fuse.bucketfs" {
		return mountedOther, fstype, nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(target, &st); errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		return mountedDead, fstype, nil
	}
	return mountedOK, fstype, nil
}

// unmount detaches the mount at target. A mount still in use by a
// process the kubelet did not stop is detached lazily: the kubelet only
// unpublishes once the pod is gone.
func unmount(target string, lazy bool) error {
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	err := syscall.Unmount(target, flags)
	if errors.Is(err, syscall.EBUSY) && !lazy {
		err = syscall.Unmount(target, syscall.MNT_DETACH)
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil // not a mount (any more)
	}
	return err
}

// freePort picks a loopback port for a mount's metrics.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// mountArgs is the "bucketfs mount" command line of a record.
func (d *Driver) mountArgs(r record) []string {
	args := []string{"mount"}
	if r.ReadOnly {
		args = append(args, "--read-only")
	}
	args = append(args, r.Flags...)
	if !hasFlag(r.Flags, "allow-other") {
		// Pods read as users of their own: the mount is root's.
		args = append(args, "--allow-other")
	}
	args = append(args,
		"--log-file="+d.st.path("logs", r.Target, ".log"),
		// bucketfs stages below CACHE_DIR/staging/.
		"--cache-dir="+d.st.dir,
		"--metrics-addr="+r.MetricsAddr)
	switch r.Identity {
	case IdentitySecret:
		args = append(args, "--credentials=env")
	case IdentityPod:
		args = append(args, "--credentials=web-identity")
	}
	if r.Source != "" {
		args = append(args, r.Source)
	}
	return append(args, "--", r.Target)
}

func hasFlag(flags []string, name string) bool {
	return slices.ContainsFunc(flags, func(f string) bool {
		return f == "--"+name || strings.HasPrefix(f, "--"+name+"=")
	})
}

// credentialVars are the variables of the driver's environment that name
// credentials: a mount with identity secret or pod gets none of them.
var credentialVars = []string{
	"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
}

// mountEnv is the environment of a record's mount process: the driver's,
// plus the volume's credentials (which never go on a command line).
func (d *Driver) mountEnv(r record) ([]string, error) {
	if r.Identity == IdentityNode {
		return d.cfg.Env, nil
	}
	var env []string
	for _, kv := range d.cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(credentialVars, k) {
			env = append(env, kv)
		}
	}
	switch r.Identity {
	case IdentitySecret:
		data, err := os.ReadFile(d.st.path("volumes", r.Target, ".keys"))
		if err != nil {
			return nil, fmt.Errorf("the access keys of volume %s are gone from the state directory: %v", r.VolumeID, err)
		}
		var keys map[string]string
		if err := json.Unmarshal(data, &keys); err != nil {
			return nil, fmt.Errorf("the access keys of volume %s in the state directory are damaged", r.VolumeID)
		}
		env = append(env, "AWS_ACCESS_KEY_ID="+keys[SecretAccessKeyID], "AWS_SECRET_ACCESS_KEY="+keys[SecretSecretAccessKey])
		if t := keys[SecretSessionToken]; t != "" {
			env = append(env, "AWS_SESSION_TOKEN="+t)
		}
	case IdentityPod:
		env = append(env, "AWS_ROLE_ARN="+r.RoleARN,
			"AWS_WEB_IDENTITY_TOKEN_FILE="+d.st.path("volumes", r.Target, ".token"),
			"AWS_ROLE_SESSION_NAME="+r.Session)
	}
	return env, nil
}

// mount starts the bucketfs daemon of a record and waits until its mount
// is ready. The daemon runs in a session of its own (bucketfs mount
// detaches it), not as a child the driver waits for, so the driver's
// exit does not end it.
func (d *Driver) mount(ctx context.Context, r record) error {
	env, err := d.mountEnv(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.MountTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cfg.Binary, d.mountArgs(r)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Its own process group: a signal to the driver's group (Ctrl-C) is
	// not the mount's business.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err = cmd.Run()
	msg := strings.TrimSpace(stderr.String())
	if err != nil {
		if msg == "" {
			msg = err.Error()
		}
		if ctx.Err() != nil {
			msg = fmt.Sprintf("mounting took longer than %v: %s", d.cfg.MountTimeout, msg)
		}
		return errors.New(strings.TrimPrefix(msg, "bucketfs mount: "))
	}
	if msg != "" {
		d.log.Warn("mount warning", "volume", r.VolumeID, "target", r.Target, "warning", msg)
	}
	d.log.Info("mounted", "volume", r.VolumeID, "target", r.Target, "source", r.Source, "identity", r.Identity,
		"read_only", r.ReadOnly, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Recover is run when the driver starts: it adopts the mounts its state
// directory lists that are still served, mounts again those whose daemon
// died (for the files opened from then on: a file that was open on the
// dead mount stays broken), and forgets targets with no mount at all (the
// kubelet unpublished them, or the node restarted and the kubelet will
// publish its pods' volumes again).
func (d *Driver) Recover(ctx context.Context) {
	recs, err := d.st.all()
	if err != nil {
		d.log.Error("cannot read the state directory", "err", err)
		return
	}
	for _, r := range recs {
		unlock, ok := d.locks.try(r.Target)
		if !ok {
			continue
		}
		ms, _, err := inspect(r.Target)
		switch {
		case err != nil:
			d.log.Error("cannot inspect a target", "target", r.Target, "err", err)
		case ms == mountedOK:
			d.log.Info("adopted a running mount", "volume", r.VolumeID, "target", r.Target)
		case ms == mountedDead:
			d.log.Warn("the mount's daemon is gone: mounting again", "volume", r.VolumeID, "target", r.Target)
			if err := d.remount(ctx, r); err != nil {
				d.log.Error("mounting again failed; the pod sees a dead mount until it is restarted", "volume", r.VolumeID, "target", r.Target, "err", err)
			}
		default:
			d.log.Info("forgetting a target that is no longer mounted", "volume", r.VolumeID, "target", r.Target, "state", ms.String())
			d.st.forget(r.Target)
		}
		unlock()
	}
}

// remount replaces the dead mount at a record's target with a new one.
func (d *Driver) remount(ctx context.Context, r record) error {
	if err := unmount(r.Target, true); err != nil {
		return fmt.Errorf("cannot detach the dead mount: %v", err)
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	r.MetricsAddr = addr
	r.Mounted = time.Now().UTC().Format(time.RFC3339)
	if err := d.st.save(r); err != nil {
		return err
	}
	return d.mount(ctx, r)
}
