package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/bucketfs/bucketfs/csi"
)

// kinds are the objects deploy/ may hold, by apiVersion and kind.
var kinds = map[string]func() any{
	"storage.k8s.io/v1/CSIDriver":              func() any { return &storagev1.CSIDriver{} },
	"apps/v1/DaemonSet":                        func() any { return &appsv1.DaemonSet{} },
	"v1/ServiceAccount":                        func() any { return &corev1.ServiceAccount{} },
	"v1/Secret":                                func() any { return &corev1.Secret{} },
	"v1/PersistentVolume":                      func() any { return &corev1.PersistentVolume{} },
	"v1/PersistentVolumeClaim":                 func() any { return &corev1.PersistentVolumeClaim{} },
	"v1/Pod":                                   func() any { return &corev1.Pod{} },
	"rbac.authorization.k8s.io/v1/ClusterRole": func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
}

// object is one decoded YAML document.
type object struct {
	file string
	kind string // apiVersion/kind
	obj  any
}

// decodeAll decodes every document of every manifest below dir strictly:
// a field the Kubernetes type does not have fails, as does a kind that is
// not in kinds.
func decodeAll(t *testing.T, dir string) []object {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	var out []object
	sep := regexp.MustCompile(`(?m)^---\s*$`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range sep.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			key := tm.APIVersion + "/" + tm.Kind
			mk, ok := kinds[key]
			if !ok {
				t.Errorf("%s document %d: unexpected kind %s", f, i+1, key)
				continue
			}
			obj := mk()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i+1, key, err)
				continue
			}
			out = append(out, object{file: f, kind: key, obj: obj})
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	bad := "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: x\nspec:\n  csi:\n    driver: d\n    volumeHandel: typo\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &corev1.PersistentVolume{}); err == nil {
		t.Fatal("a misspelt field decoded without error: the manifest test would not catch one")
	}
}

// TestManifests decodes deploy/ and deploy/examples/ and checks that the
// parts agree with each other and with the driver.
func TestManifests(t *testing.T) {
	objs := decodeAll(t, ".")
	count := map[string]int{}
	var sa *corev1.ServiceAccount
	var ds *appsv1.DaemonSet
	for _, o := range objs {
		count[o.kind]++
		switch x := o.obj.(type) {
		case *storagev1.CSIDriver:
			if x.Name != csi.DriverName {
				t.Errorf("%s: CSIDriver %s, want %s", o.file, x.Name, csi.DriverName)
			}
			if x.Spec.AttachRequired == nil || *x.Spec.AttachRequired {
				t.Errorf("%s: attachRequired must be false: the driver has no controller", o.file)
			}
			if x.Spec.PodInfoOnMount == nil || !*x.Spec.PodInfoOnMount {
				t.Errorf("%s: podInfoOnMount must be true (identity pod reads the service account)", o.file)
			}
			if len(x.Spec.TokenRequests) != 1 || x.Spec.TokenRequests[0].Audience != csi.TokenAudience {
				t.Errorf("%s: tokenRequests must ask for audience %s", o.file, csi.TokenAudience)
			}
			if x.Spec.RequiresRepublish == nil || !*x.Spec.RequiresRepublish {
				t.Errorf("%s: requiresRepublish must be true, or pod tokens expire in the mount", o.file)
			}
		case *appsv1.DaemonSet:
			ds = x
		case *corev1.ServiceAccount:
			if x.Namespace == "kube-system" {
				sa = x
			}
		case *corev1.PersistentVolume:
			if x.Spec.CSI == nil || x.Spec.CSI.Driver != csi.DriverName {
				t.Errorf("%s: PersistentVolume %s does not use driver %s", o.file, x.Name, csi.DriverName)
			}
		}
	}
	for _, k := range []string{"storage.k8s.io/v1/CSIDriver", "apps/v1/DaemonSet", "rbac.authorization.k8s.io/v1/ClusterRole",
		"rbac.authorization.k8s.io/v1/ClusterRoleBinding", "v1/ServiceAccount", "v1/PersistentVolume", "v1/PersistentVolumeClaim", "v1/Pod"} {
		if count[k] == 0 {
			t.Errorf("no %s in deploy/", k)
		}
	}
	if ds == nil || sa == nil {
		t.Fatal("deploy/ needs the DaemonSet and its ServiceAccount")
	}
	spec := ds.Spec.Template.Spec
	if spec.ServiceAccountName != sa.Name || ds.Namespace != sa.Namespace {
		t.Errorf("the DaemonSet runs as %s/%s, but the ServiceAccount is %s/%s", ds.Namespace, spec.ServiceAccountName, sa.Namespace, sa.Name)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	var driver, registrar *corev1.Container
	for i := range spec.Containers {
		switch spec.Containers[i].Name {
		case "bucketfs":
			driver = &spec.Containers[i]
		case "node-driver-registrar":
			registrar = &spec.Containers[i]
		}
	}
	if driver == nil || registrar == nil {
		t.Fatal("the DaemonSet needs the bucketfs and node-driver-registrar containers")
	}
	if driver.SecurityContext == nil || driver.SecurityContext.Privileged == nil || !*driver.SecurityContext.Privileged {
		t.Error("the bucketfs container must be privileged to mount")
	}
	if len(driver.Args) == 0 || driver.Args[0] != "csi" {
		t.Errorf("the bucketfs container runs %q, want bucketfs csi", driver.Args)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range driver.VolumeMounts {
		mounts[m.MountPath] = m
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volume mount %s names no volume", m.Name)
		}
	}
	if m := mounts["/var/lib/kubelet"]; m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Error("/var/lib/kubelet must be mounted with mountPropagation: Bidirectional, or pods never see the mounts")
	} else if hp := vols[m.Name].HostPath; hp == nil || hp.Path != "/var/lib/kubelet" {
		t.Error("/var/lib/kubelet in the container must be the host's /var/lib/kubelet")
	}
	if m, ok := mounts["/dev/fuse"]; !ok || vols[m.Name].HostPath == nil || vols[m.Name].HostPath.Path != "/dev/fuse" {
		t.Error("the bucketfs container needs the host's /dev/fuse")
	}
	plugin := "/var/lib/kubelet/plugins/" + csi.DriverName
	want := "--kubelet-registration-path=" + plugin + "/csi.sock"
	if !strings.Contains(strings.Join(registrar.Args, " "), want) {
		t.Errorf("the registrar's args %q lack %s", registrar.Args, want)
	}
	for _, m := range driver.VolumeMounts {
		if m.MountPath == "/csi" && (vols[m.Name].HostPath == nil || vols[m.Name].HostPath.Path != plugin) {
			t.Errorf("/csi must be the host's %s, where the registrar tells the kubelet the socket is", plugin)
		}
	}
}

// TestDockerfile checks that the image builds with the Go of go.mod and
// through scripts/build (static, version stamped).
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goVer == nil {
		t.Fatal("go.mod has no go line")
	}
	for _, want := range []string{fmt.Sprintf("FROM golang:%s", goVer[1]), "RUN scripts/build ", "FROM scratch", "ENTRYPOINT [\"/usr/local/bin/bucketfs\"]"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}
