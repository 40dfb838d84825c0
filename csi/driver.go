// Package csi is bucketfs's Kubernetes CSI node plugin: the Identity and
// Node services of the Container Storage Interface, which mount a
// PersistentVolume's bucket (or prefix, or every bucket) at the target path
// the kubelet names, by running "bucketfs mount" with the volume's options.
//
// Provisioning is static: a cluster admin writes the PersistentVolume
// (spec.csi.volumeAttributes, see volume.go), so there is no controller
// service. Each mount is a bucketfs daemon of its own; the driver keeps a
// record of it in its state directory (mounts.go) and serves the metrics of
// every mount on one endpoint (metrics.go).
package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DriverName is the name of the CSI driver: the CSIDriver object's name and
// every PersistentVolume's spec.csi.driver.
const DriverName = "s3.csi.bucketfs.io"

// Config is what the driver needs.
type Config struct {
	NodeID    string // the Kubernetes node's name
	StateDir  string // on the node's disk, e.g. /var/lib/bucketfs-csi
	Binary    string // the bucketfs executable that mounts
	Version   string
	Translate Translator
	// Env is the environment of every mount process: the driver's own,
	// which gives the node identity (instance metadata, or keys the
	// DaemonSet sets).
	Env []string
	// Roles finds a service account's IAM role (identity pod without the
	// role_arn attribute); nil asks the Kubernetes API from inside the
	// cluster, with the token and CA in ServiceAccountDir (default
	// DefaultServiceAccountDir).
	Roles             RoleLookup
	ServiceAccountDir string
	MountTimeout      time.Duration // default 2 minutes
	Logger            *slog.Logger
}

// RoleLookup returns the IAM role a service account is annotated with, ""
// if none.
type RoleLookup func(ctx context.Context, namespace, name string) (string, error)

// Driver serves the CSI Identity and Node services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer

	cfg   Config
	st    state
	log   *slog.Logger
	locks keyedLocks
}

// New checks cfg and prepares the state directory.
func New(cfg Config) (*Driver, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("--node-id is missing: the DaemonSet passes the node's name (spec.nodeName)")
	}
	if cfg.StateDir == "" || !strings.HasPrefix(cfg.StateDir, "/") {
		return nil, fmt.Errorf("--state-dir %q must be an absolute path on the node's disk", cfg.StateDir)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MountTimeout == 0 {
		cfg.MountTimeout = 2 * time.Minute
	}
	if cfg.ServiceAccountDir == "" {
		cfg.ServiceAccountDir = DefaultServiceAccountDir
	}
	if cfg.Roles == nil {
		cfg.Roles = inClusterRoles(cfg.ServiceAccountDir)
	}
	d := &Driver{cfg: cfg, st: state{dir: cfg.StateDir}, log: cfg.Logger}
	if err := d.st.init(); err != nil {
		return nil, err
	}
	return d, nil
}

// Serve serves the driver on a unix socket until ctx ends.
func (d *Driver) Serve(ctx context.Context, socket string) error {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove the old socket %s: %v", socket, err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v", socket, err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.logCalls))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	d.log.Info("serving CSI", "driver", DriverName, "version", d.cfg.Version, "node", d.cfg.NodeID, "endpoint", socket)
	return srv.Serve(l)
}

// logCalls logs each call with its volume and outcome: never the request,
// which carries secrets and tokens.
func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	var vol, target string
	if r, ok := req.(interface{ GetVolumeId() string }); ok {
		vol = r.GetVolumeId()
	}
	if r, ok := req.(interface{ GetTargetPath() string }); ok {
		target = r.GetTargetPath()
	}
	switch {
	case err != nil:
		d.log.Warn(method, "volume", vol, "target", target, "code", status.Code(err).String(), "err", status.Convert(err).Message())
	case vol != "":
		d.log.Info(method, "volume", vol, "target", target, "took", time.Since(start).Round(time.Millisecond))
	default:
		d.log.Debug(method)
	}
	return resp, err
}

// Identity service.

func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: DriverName, VendorVersion: d.cfg.Version}, nil
}

func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	// Node service only: volumes are provisioned statically.
	return &csi.GetPluginCapabilitiesResponse{}, nil
}

func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// Node service.

func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID}, nil
}

// NodeGetCapabilities: VOLUME_MOUNT_GROUP, so the kubelet passes a pod's
// fsGroup to the mount (as its gid) instead of trying to chown a bucket.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{{
		Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP}},
	}}}, nil
}

// NodePublishVolume mounts the volume at the target path. Publishing again
// what is already mounted there succeeds, and hands a fresh pod token to
// the mount (the kubelet republishes for that: requiresRepublish).
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	v, err := parseVolume(req, d.cfg.Translate)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	unlock, ok := d.locks.try(v.target)
	if !ok {
		return nil, status.Errorf(codes.Aborted, "an operation on %s is in progress", v.target)
	}
	defer unlock()

	ms, fstype, err := inspect(v.target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "cannot read the mount table: %v", err)
	}
	old, known, err := d.st.load(v.target)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	switch {
	case ms == mountedOther:
		return nil, status.Errorf(codes.AlreadyExists, "target %s already has a %s mount", v.target, fstype)
	case ms != notMounted && known && old.VolumeID != v.id:
		return nil, status.Errorf(codes.AlreadyExists, "target %s already has volume %s mounted, not %s", v.target, old.VolumeID, v.id)
	case ms == mountedOK && known:
		if old.ReadOnly != v.readOnly {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s is already mounted at %s with read_only=%v", v.id, v.target, old.ReadOnly)
		}
		if v.identity == IdentityPod {
			if err := writeFile(d.st.path("volumes", v.target, ".token"), []byte(v.token)); err != nil {
				return nil, status.Errorf(codes.Internal, "cannot store the pod's token: %v", err)
			}
		}
		return &csi.NodePublishVolumeResponse{}, nil
	case ms == mountedOK:
		return nil, status.Errorf(codes.AlreadyExists, "target %s has a bucketfs mount the driver did not make", v.target)
	case ms == mountedDead:
		if err := unmount(v.target, true); err != nil {
			return nil, status.Errorf(codes.Internal, "cannot detach the dead mount at %s: %v", v.target, err)
		}
	}

	r := record{VolumeID: v.id, Target: v.target, Source: v.source, Flags: v.flags, ReadOnly: v.readOnly,
		Identity: v.identity, Mounted: time.Now().UTC().Format(time.RFC3339)}
	if r.MetricsAddr, err = freePort(); err != nil {
		return nil, status.Errorf(codes.Internal, "no port for the mount's metrics: %v", err)
	}
	switch v.identity {
	case IdentitySecret:
		keys, _ := json.Marshal(map[string]string{SecretAccessKeyID: v.secrets[SecretAccessKeyID],
			SecretSecretAccessKey: v.secrets[SecretSecretAccessKey], SecretSessionToken: v.secrets[SecretSessionToken]})
		if err := writeFile(d.st.path("volumes", v.target, ".keys"), keys); err != nil {
			return nil, status.Errorf(codes.Internal, "cannot store the volume's access keys: %v", err)
		}
	case IdentityPod:
		r.RoleARN = v.roleARN
		if r.RoleARN == "" {
			role, err := d.cfg.Roles(ctx, v.pod.namespace, v.pod.serviceAccount)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "cannot read service account %s/%s to find its IAM role: %v", v.pod.namespace, v.pod.serviceAccount, err)
			}
			if role == "" {
				return nil, status.Errorf(codes.InvalidArgument, "volume %s: identity pod, but neither the volume attribute %s nor the annotation %s of service account %s/%s names an IAM role: annotate the service account (kubectl annotate serviceaccount -n %s %s %s=arn:aws:iam::ACCOUNT:role/NAME) or set %s",
					v.id, AttrRoleARN, roleAnnotation, v.pod.namespace, v.pod.serviceAccount, v.pod.namespace, v.pod.serviceAccount, roleAnnotation, AttrRoleARN)
			}
			r.RoleARN = role
		}
		r.Session = sessionName(v.pod)
		if err := writeFile(d.st.path("volumes", v.target, ".token"), []byte(v.token)); err != nil {
			return nil, status.Errorf(codes.Internal, "cannot store the pod's token: %v", err)
		}
	}
	// The CO makes the target's parent; the plugin makes the target,
	// and removes it again if the mount fails: nothing half-made.
	_, statErr := os.Stat(v.target)
	made := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(v.target, 0o750); err != nil {
		d.st.forget(v.target)
		return nil, status.Errorf(codes.Internal, "cannot create the target %s: %v", v.target, err)
	}
	if err := d.st.save(r); err != nil {
		d.st.forget(v.target)
		return nil, status.Errorf(codes.Internal, "cannot write the state directory: %v", err)
	}
	if err := d.mount(ctx, r); err != nil {
		d.st.forget(v.target)
		if made {
			_ = os.Remove(v.target) // empty: nothing was mounted
		}
		return nil, status.Errorf(codes.Internal, "volume %s (%s): %v", v.id, identityNote(r), err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// identityNote says where a mount's credentials came from, for errors
// whose advice speaks of environment variables.
func identityNote(r record) string {
	switch r.Identity {
	case IdentitySecret:
		return "credentials from the " + SecretAccessKeyID + " and " + SecretSecretAccessKey + " of the PersistentVolume's nodePublishSecretRef secret"
	case IdentityPod:
		return "credentials: the pod's service-account token as a web identity for role " + r.RoleARN
	}
	return "credentials: the node's, from instance metadata or the driver's environment"
}

// sessionName names a pod's role session after the pod, so CloudTrail
// says which pod read what.
func sessionName(p podInfo) string {
	n := "bucketfs"
	if p.namespace != "" && p.name != "" {
		n += "-" + p.namespace + "-" + p.name
	}
	var b strings.Builder
	for _, c := range n {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("=,.@-_", c) {
			b.WriteRune(c)
		}
	}
	s := b.String()
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// NodeUnpublishVolume unmounts the target and removes it. Unpublishing a
// target that is not mounted (any more) succeeds.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target_path is missing")
	}
	unlock, ok := d.locks.try(target)
	if !ok {
		return nil, status.Errorf(codes.Aborted, "an operation on %s is in progress", target)
	}
	defer unlock()
	ms, fstype, err := inspect(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "cannot read the mount table: %v", err)
	}
	switch ms {
	case mountedOther:
		return nil, status.Errorf(codes.FailedPrecondition, "target %s is a %s mount, not bucketfs: the driver leaves it alone", target, fstype)
	case mountedOK, mountedDead:
		if err := unmount(target, ms == mountedDead); err != nil {
			return nil, status.Errorf(codes.Internal, "cannot unmount %s: %v", target, err)
		}
		d.log.Info("unmounted", "volume", id, "target", target)
	}
	d.st.forget(target)
	// Remove, not RemoveAll: the target is an empty mount point, and a
	// directory with something in it is nothing the driver may delete.
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return nil, status.Errorf(codes.Internal, "target %s is not empty after unmounting: something wrote into it while it was not mounted; the driver leaves it", target)
		}
		return nil, status.Errorf(codes.Internal, "cannot remove the target %s: %v", target, err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// keyedLocks lets one operation at a time work on a target.
type keyedLocks struct {
	mu   sync.Mutex
	busy map[string]bool
}

func (k *keyedLocks) try(key string) (unlock func(), ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy[key] {
		return nil, false
	}
	if k.busy == nil {
		k.busy = map[string]bool{}
	}
	k.busy[key] = true
	return func() {
		k.mu.Lock()
		delete(k.busy, key)
		k.mu.Unlock()
	}, true
}
