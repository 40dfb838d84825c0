package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	csispec "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/bucketfs/bucketfs/csi"
)

// TestExamplePersistentVolumes: every PersistentVolume in deploy/examples
// is accepted by the driver, through the fstab option table, as the
// kubelet would publish it for a pod.
func TestExamplePersistentVolumes(t *testing.T) {
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	sep := regexp.MustCompile(`(?m)^---\s*$`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := sep.Split(string(data), -1)
		secrets := map[string]map[string]string{}
		for _, doc := range docs {
			var s corev1.Secret
			if yaml.Unmarshal([]byte(doc), &s) == nil && s.Kind == "Secret" {
				secrets[s.Namespace+"/"+s.Name] = s.StringData
			}
		}
		for _, doc := range docs {
			var pv corev1.PersistentVolume
			if yaml.Unmarshal([]byte(doc), &pv) != nil || pv.Kind != "PersistentVolume" {
				continue
			}
			n++
			attrs := map[string]string{
				"csi.storage.k8s.io/pod.name":              "session-1",
				"csi.storage.k8s.io/pod.namespace":         "rstudio",
				"csi.storage.k8s.io/serviceAccount.name":   "default",
				"csi.storage.k8s.io/serviceAccount.tokens": `{"sts.amazonaws.com":{"token":"jwt","expirationTimestamp":"2030-01-01T00:00:00Z"}}`,
			}
			for k, v := range pv.Spec.CSI.VolumeAttributes {
				attrs[k] = v
			}
			var sec map[string]string
			if r := pv.Spec.CSI.NodePublishSecretRef; r != nil {
				sec = secrets[r.Namespace+"/"+r.Name]
			}
			req := &csispec.NodePublishVolumeRequest{
				VolumeId:   pv.Spec.CSI.VolumeHandle,
				TargetPath: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/" + pv.Name + "/mount",
				VolumeCapability: &csispec.VolumeCapability{
					AccessType: &csispec.VolumeCapability_Mount{Mount: &csispec.VolumeCapability_MountVolume{MountFlags: pv.Spec.MountOptions}},
					AccessMode: &csispec.VolumeCapability_AccessMode{Mode: csispec.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
				},
				Readonly:      pv.Spec.CSI.ReadOnly,
				VolumeContext: attrs,
				Secrets:       sec,
			}
			if err := csi.CheckPublish(req, fstabTranslator); err != nil {
				t.Errorf("%s: PersistentVolume %s: %v", filepath.Base(f), pv.Name, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no PersistentVolume in deploy/examples")
	}
}

// TestFSGroup: a pod's fsGroup becomes --gid unless the volume sets gid=.
func TestFSGroup(t *testing.T) {
	req := func(group string, opts ...string) *csispec.NodePublishVolumeRequest {
		return &csispec.NodePublishVolumeRequest{
			VolumeId: "v", TargetPath: "/t",
			VolumeCapability: &csispec.VolumeCapability{
				AccessType: &csispec.VolumeCapability_Mount{Mount: &csispec.VolumeCapability_MountVolume{MountFlags: opts, VolumeMountGroup: group}},
				AccessMode: &csispec.VolumeCapability_AccessMode{Mode: csispec.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			},
			VolumeContext: map[string]string{"source": "s3://b"},
		}
	}
	if err := csi.CheckPublish(req("1000"), fstabTranslator); err != nil {
		t.Errorf("fsGroup 1000: %v", err)
	}
	if err := csi.CheckPublish(req("staff"), fstabTranslator); err == nil || !strings.Contains(err.Error(), `fsGroup "staff" is not a number`) {
		t.Errorf("fsGroup staff: %v, want an error", err)
	}
	// gid= in the volume wins, and the fsGroup is not even looked at.
	if err := csi.CheckPublish(req("staff", "gid=50"), fstabTranslator); err != nil {
		t.Errorf("fsGroup with gid=50: %v", err)
	}
}

// TestCSIOptionsAreFstabOptions: volume options go through the fstab
// table, so a word that works in /etc/fstab works in a PersistentVolume,
// and a wrong one fails the same way.
func TestCSIOptionsAreFstabOptions(t *testing.T) {
	for _, tc := range []struct {
		words   []string
		want    []string
		wantErr string
	}{
		{words: []string{"ro,region=eu-west-1", "metadata_ttl=5m"}, want: []string{"--read-only", "--region=eu-west-1", "--metadata-ttl=5m"}},
		{words: []string{"noatime,_netdev,allow_delete"}, want: []string{"--allow-delete"}},
		{words: []string{"metadata_tll=5m"}, wantErr: `unknown option "metadata_tll=5m"`},
	} {
		got, err := fstabTranslator(tc.words)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %v, want %q", tc.words, err, tc.wantErr)
			}
		case err != nil || strings.Join(got, " ") != strings.Join(tc.want, " "):
			t.Errorf("%q: %q, %v; want %q", tc.words, got, err, tc.want)
		}
	}
}
