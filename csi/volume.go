package csi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// The volume attributes a PersistentVolume may set
// (spec.csi.volumeAttributes). Everything else, except the keys Kubernetes
// adds itself (csi.storage.k8s.io/...), is refused, so a typo is an error
// rather than a silently different mount.
const (
	// AttrSource names what to mount, as the source of an /etc/fstab
	// line: s3://BUCKET, s3://BUCKET/PREFIX, or "bucketfs" for every
	// bucket the credentials can list.
	AttrSource = "source"
	// AttrOptions are mount options in the words of /etc/fstab
	// (comma-separated: "ro,region=eu-west-1,metadata_ttl=5m"). The PV's
	// spec.mountOptions are read the same way.
	AttrOptions = "options"
	// AttrIdentity is whose credentials sign the mount's requests: node
	// (the driver's own: the instance role through instance metadata, or
	// whatever the driver's environment gives), secret (the access keys of
	// the PV's nodePublishSecretRef) or pod (the pod's service-account
	// token as a web identity for AttrRoleARN or the service account's
	// eks.amazonaws.com/role-arn annotation). Default: secret when the PV
	// names a secret, else node.
	AttrIdentity = "identity"
	// AttrRoleARN is the IAM role a pod identity assumes.
	AttrRoleARN = "role_arn"
)

// The identities of AttrIdentity.
const (
	IdentityNode   = "node"
	IdentitySecret = "secret"
	IdentityPod    = "pod"
)

// Keys Kubernetes puts in the volume context: podInfoOnMount and
// tokenRequests of the CSIDriver object.
const (
	ctxPodName        = "csi.storage.k8s.io/pod.name"
	ctxPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	ctxPodUID         = "csi.storage.k8s.io/pod.uid"
	ctxServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	ctxTokens         = "csi.storage.k8s.io/serviceAccount.tokens"
	ctxEphemeral      = "csi.storage.k8s.io/ephemeral"
)

// The keys of a nodePublishSecretRef secret.
const (
	SecretAccessKeyID     = "access_key_id"
	SecretSecretAccessKey = "secret_access_key"
	SecretSessionToken    = "session_token"
)

// TokenAudience is the audience of the service-account token the driver
// asks for (the CSIDriver's tokenRequests) and hands to STS.
const TokenAudience = "sts.amazonaws.com"

// roleAnnotation is where a service account names its IAM role (as EKS's
// IAM roles for service accounts do).
const roleAnnotation = "eks.amazonaws.com/role-arn"

// driverFlags are the mount flags the driver sets itself; a volume that
// sets them is refused, naming the fstab word.
var driverFlags = map[string]string{
	"log-file":     "log_file (the driver logs each mount to its state directory)",
	"metrics-addr": "metrics_addr (the driver gives each mount a port and serves all of them on its own --metrics-addr)",
	"cache-dir":    "cache_dir (the driver stages writes in its state directory)",
	"credentials":  "credentials (use the volume attribute identity: node, secret or pod)",
	"profile":      "profile (the driver has no AWS config files: use the volume attribute identity)",
}

// Translator turns fstab option words into "bucketfs mount" flags: the
// same table that /etc/fstab lines go through (cmd/bucketfs/fstab.go).
type Translator func(words []string) ([]string, error)

// volume is what one NodePublishVolume asks for, checked.
type volume struct {
	id, target string
	source     string   // s3://BUCKET[/PREFIX] or "" for every bucket
	flags      []string // "bucketfs mount" flags from the options
	readOnly   bool
	identity   string
	roleARN    string
	secrets    map[string]string // the nodePublishSecretRef's data (identity secret)
	token      string            // the pod's token (identity pod)
	pod        podInfo
}

type podInfo struct{ name, namespace, uid, serviceAccount string }

// invalid is a request that cannot be served as asked: InvalidArgument,
// with a message a cluster admin can act on.
type invalid struct{ msg string }

func (e invalid) Error() string { return e.msg }

func invalidf(format string, a ...any) error { return invalid{fmt.Sprintf(format, a...)} }

// parseVolume checks a NodePublishVolume request and turns it into a
// volume. Every mistake is an invalid naming the field and the fix.
func parseVolume(req *csi.NodePublishVolumeRequest, translate Translator) (volume, error) {
	v := volume{id: req.GetVolumeId(), target: req.GetTargetPath()}
	switch {
	case v.id == "":
		return v, invalidf("volume_id is missing: set spec.csi.volumeHandle of the PersistentVolume")
	case v.target == "":
		return v, invalidf("target_path is missing (the kubelet always sets it: is something other than the kubelet calling the driver?)")
	case !strings.HasPrefix(v.target, "/"):
		return v, invalidf("target_path %q is not an absolute path", v.target)
	}
	vc := req.GetVolumeCapability()
	if vc == nil {
		return v, invalidf("volume_capability is missing")
	}
	if vc.GetBlock() != nil {
		return v, invalidf("volume %s asks for a raw block device: bucketfs volumes are file systems: set volumeMode: Filesystem on the PersistentVolume and the claim", v.id)
	}
	mnt := vc.GetMount()
	if mnt == nil {
		return v, invalidf("volume_capability has no access type: want mount (volumeMode: Filesystem)")
	}
	if fs := mnt.GetFsType(); fs != "" && fs != "bucketfs" && fs != "fuse.bucketfs" {
		return v, invalidf("fsType %q: bucketfs volumes are bucketfs: leave spec.csi.fsType out", fs)
	}
	switch vc.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		v.readOnly = true
	case csi.VolumeCapability_AccessMode_UNKNOWN:
		return v, invalidf("volume_capability has no access mode: set accessModes on the PersistentVolume (ReadWriteMany or ReadOnlyMany)")
	}
	if req.GetReadonly() {
		v.readOnly = true
	}

	attrs := req.GetVolumeContext()
	var unknown []string
	for k := range attrs {
		switch k {
		case AttrSource, AttrOptions, AttrIdentity, AttrRoleARN:
		default:
			if !strings.HasPrefix(k, "csi.storage.k8s.io/") {
				unknown = append(unknown, k)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return v, invalidf("volume %s: unknown volume attribute %s: spec.csi.volumeAttributes takes %s, %s, %s and %s (mount options go in %s, as in /etc/fstab)",
			v.id, strings.Join(unknown, ", "), AttrSource, AttrOptions, AttrIdentity, AttrRoleARN, AttrOptions)
	}
	if attrs[ctxEphemeral] == "true" {
		return v, invalidf("volume %s is an inline ephemeral volume: bucketfs serves PersistentVolumes only: use a PersistentVolume and claim", v.id)
	}

	src, ok := attrs[AttrSource]
	switch {
	case !ok || strings.TrimSpace(src) == "":
		return v, invalidf("volume %s: volume attribute %s is missing: set spec.csi.volumeAttributes.%s to s3://BUCKET, s3://BUCKET/PREFIX, or bucketfs for every bucket", v.id, AttrSource, AttrSource)
	case src == "bucketfs":
	case strings.HasPrefix(src, "s3://") && len(strings.Trim(strings.TrimPrefix(src, "s3://"), "/")) > 0 && !strings.HasPrefix(strings.TrimPrefix(src, "s3://"), "/"):
		v.source = src
	default:
		return v, invalidf("volume %s: volume attribute %s=%q: want s3://BUCKET, s3://BUCKET/PREFIX, or bucketfs for every bucket", v.id, AttrSource, src)
	}

	words := append([]string{}, mnt.GetMountFlags()...)
	if o := attrs[AttrOptions]; o != "" {
		words = append(words, o)
	}
	flags, err := translate(words)
	if err != nil {
		return v, invalidf("volume %s: mount options (volume attribute %s and spec.mountOptions): %v", v.id, AttrOptions, err)
	}
	for _, f := range flags {
		name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if why, ok := driverFlags[name]; ok {
			return v, invalidf("volume %s: mount option %s is set by the driver: remove it from the PersistentVolume", v.id, why)
		}
		if name == "read-only" {
			v.readOnly = true
			continue
		}
		v.flags = append(v.flags, f)
	}

	// The pod's fsGroup (the CSIDriver's fsGroupPolicy: File with the
	// VOLUME_MOUNT_GROUP capability): the group of every file, unless the
	// volume's own gid= says otherwise.
	if g := mnt.GetVolumeMountGroup(); g != "" && !hasFlag(v.flags, "gid") {
		if _, err := strconv.ParseUint(g, 10, 32); err != nil {
			return v, invalidf("volume %s: the pod's fsGroup %q is not a number", v.id, g)
		}
		v.flags = append(v.flags, "--gid="+g)
	}

	v.pod = podInfo{name: attrs[ctxPodName], namespace: attrs[ctxPodNamespace], uid: attrs[ctxPodUID], serviceAccount: attrs[ctxServiceAccount]}
	v.secrets = req.GetSecrets()
	v.roleARN = attrs[AttrRoleARN]
	v.identity = attrs[AttrIdentity]
	if v.identity == "" {
		v.identity = IdentityNode
		if len(v.secrets) > 0 {
			v.identity = IdentitySecret
		}
	}
	switch v.identity {
	case IdentityNode:
		if v.roleARN != "" {
			return v, invalidf("volume %s: volume attribute %s is set but identity is node: set identity: pod to use the pod's role, or remove %s", v.id, AttrRoleARN, AttrRoleARN)
		}
	case IdentitySecret:
		if err := checkSecret(v.id, v.secrets); err != nil {
			return v, err
		}
	case IdentityPod:
		tok, err := podToken(v.id, attrs[ctxTokens])
		if err != nil {
			return v, err
		}
		v.token = tok
		if v.roleARN != "" && !strings.HasPrefix(v.roleARN, "arn:") {
			return v, invalidf("volume %s: volume attribute %s=%q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", v.id, AttrRoleARN, v.roleARN)
		}
		if v.roleARN == "" && (v.pod.namespace == "" || v.pod.serviceAccount == "") {
			return v, invalidf("volume %s: identity pod needs a role: set the volume attribute %s, or podInfoOnMount: true on the CSIDriver object so the driver can read the service account's %s annotation", v.id, AttrRoleARN, roleAnnotation)
		}
	default:
		return v, invalidf("volume %s: volume attribute %s=%q: use %s, %s or %s", v.id, AttrIdentity, v.identity, IdentityNode, IdentitySecret, IdentityPod)
	}
	return v, nil
}

// checkSecret checks the keys of a nodePublishSecretRef secret.
func checkSecret(id string, s map[string]string) error {
	if len(s) == 0 {
		return invalidf("volume %s: identity secret but no secret reached the driver: set spec.csi.nodePublishSecretRef (name and namespace) on the PersistentVolume", id)
	}
	var missing []string
	for _, k := range []string{SecretAccessKeyID, SecretSecretAccessKey} {
		if s[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		var have []string
		for k := range s {
			have = append(have, k)
		}
		sort.Strings(have)
		// Key names only: never a value.
		return invalidf("volume %s: the nodePublishSecretRef secret lacks %s (it has: %s): create it with kubectl create secret generic NAME --from-literal=%s=AKIA... --from-literal=%s=...",
			id, strings.Join(missing, " and "), strings.Join(have, ", "), SecretAccessKeyID, SecretSecretAccessKey)
	}
	return nil
}

// podToken takes the pod's token for TokenAudience out of the volume
// context that CSIDriver tokenRequests fill:
// {"sts.amazonaws.com": {"token": "...", "expirationTimestamp": "..."}}.
func podToken(id, raw string) (string, error) {
	if raw == "" {
		return "", invalidf("volume %s: identity pod but the kubelet passed no service-account token: add tokenRequests: [{audience: %s}] to the CSIDriver object (deploy/csidriver.yaml does)", id, TokenAudience)
	}
	var toks map[string]struct {
		Token      string    `json:"token"`
		Expiration time.Time `json:"expirationTimestamp"`
	}
	if err := json.Unmarshal([]byte(raw), &toks); err != nil {
		return "", invalidf("volume %s: the service-account tokens in the volume context are not JSON (%v)", id, err)
	}
	t, ok := toks[TokenAudience]
	if !ok || t.Token == "" {
		var auds []string
		for a := range toks {
			auds = append(auds, a)
		}
		sort.Strings(auds)
		return "", invalidf("volume %s: identity pod needs a token for audience %s, got tokens for %q: set tokenRequests: [{audience: %s}] on the CSIDriver object", id, TokenAudience, auds, TokenAudience)
	}
	return t.Token, nil
}

// CheckPublish reports whether the driver would accept req, with the error
// NodePublishVolume would answer (InvalidArgument) if not. For tests of
// PersistentVolumes written for the driver.
func CheckPublish(req *csi.NodePublishVolumeRequest, translate Translator) error {
	_, err := parseVolume(req, translate)
	return err
}
