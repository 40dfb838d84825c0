package e2e

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCSIBadAttributes: a volume the driver cannot serve as written is
// refused with InvalidArgument and a message that names the field and the
// fix, and nothing is mounted.
func TestCSIBadAttributes(t *testing.T) {
	s := need(t)
	needRoot(t)
	d := s.startCSI(t, t.TempDir(), s.csiEnv())
	targets := s.csiTargets(t)
	good := s.testAttrs("s3://some-bucket")
	set := func(k, v string) map[string]string {
		a := with(good, map[string]string{k: v})
		if v == "" {
			delete(a, k)
		}
		return a
	}
	for _, tc := range []struct {
		name    string
		vol     csiVolume
		block   bool
		wantMsg string
	}{
		{"no source", csiVolume{attrs: set("source", "")}, false, "volume attribute source is missing: set spec.csi.volumeAttributes.source to s3://BUCKET"},
		{"source not a URL", csiVolume{attrs: set("source", "my-bucket")}, false, `source="my-bucket": want s3://BUCKET`},
		{"source without bucket", csiVolume{attrs: set("source", "s3:///data")}, false, "want s3://BUCKET"},
		{"unknown attribute", csiVolume{attrs: set("bucket", "x")}, false, "unknown volume attribute bucket"},
		{"bad option value", csiVolume{attrs: set("options", "metadata_ttl=soon")}, false, "option metadata_ttl=soon"},
		{"unknown option", csiVolume{attrs: set("options", "cache=big")}, false, `unknown option "cache=big": valid options are`},
		{"unknown mountOption", csiVolume{attrs: good, flags: []string{"noexec", "turbo"}}, false, `unknown option "turbo"`},
		{"option the driver sets", csiVolume{attrs: set("options", "log_file=/tmp/x.log")}, false, "mount option log_file (the driver logs"},
		{"credentials option", csiVolume{attrs: set("options", "credentials=env")}, false, "use the volume attribute identity"},
		{"unknown identity", csiVolume{attrs: set("identity", "team")}, false, `identity="team": use node, secret or pod`},
		{"secret identity without secret", csiVolume{attrs: set("identity", "secret")}, false, "set spec.csi.nodePublishSecretRef"},
		{"secret without secret key", csiVolume{attrs: good, secrets: map[string]string{"access_key_id": "AK", "secretKey": "S"}}, false,
			"lacks secret_access_key (it has: access_key_id, secretKey)"},
		{"pod identity without token", csiVolume{attrs: set("identity", "pod")}, false, "add tokenRequests: [{audience: sts.amazonaws.com}] to the CSIDriver"},
		{"role for node identity", csiVolume{attrs: set("role_arn", "arn:aws:iam::1:role/x")}, false, "set identity: pod"},
		{"block volume", csiVolume{attrs: good}, true, "set volumeMode: Filesystem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.vol.id = "vol-bad"
			target := filepath.Join(targets, strings.ReplaceAll(tc.name, " ", "-"))
			req := tc.vol.publishReq(target)
			if tc.block {
				req.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
			}
			_, err := d.node.NodePublishVolume(t.Context(), req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.wantMsg) {
				t.Errorf("got %v\nwant InvalidArgument with %q", err, tc.wantMsg)
			}
			if _, serr := os.Stat(target); serr == nil {
				t.Errorf("the refused publish made %s", target)
			}
		})
	}
}

// scrapeCSI returns the driver's metrics page.
func scrapeCSI(t *testing.T, d *csiDriver) string {
	t.Helper()
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		t.Fatalf("scraping the driver: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping the driver: %s\n%s", resp.Status, body)
	}
	return string(body)
}

// hasSample reports whether the metrics page has a sample of metric with
// all the given label pairs (`name="value"`).
func hasSample(page, metric string, labels ...string) bool {
	for _, line := range strings.Split(page, "\n") {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestCSITwoTargets publishes one volume to two targets (two pods on the
// node), a third read-only and a fourth for a pod with an fsGroup: what
// one writes the other reads, the read-only one refuses writes, the
// fsGroup is the files' group, one Prometheus scrape of the driver shows
// every mount by volume and target, and unpublishing one leaves the others.
func TestCSITwoTargets(t *testing.T) {
	s := need(t)
	needRoot(t)
	bkt := s.bucket("csitwo")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"data/a.csv": []byte("x,y\n1,2\n")}})
	d := s.startCSI(t, t.TempDir(), s.csiEnv("AWS_ACCESS_KEY_ID="+s.access, "AWS_SECRET_ACCESS_KEY="+s.secret))
	targets := s.csiTargets(t)
	v := csiVolume{id: "vol-two", attrs: s.testAttrs("s3://"+bkt+"/data", "metadata_ttl=1s")}
	a, b, ro := filepath.Join(targets, "pod-a", "mount"), filepath.Join(targets, "pod-b", "mount"), filepath.Join(targets, "pod-c", "mount")
	d.publish(t, s, v, a)
	d.publish(t, s, v, b)
	vro := v
	vro.readOnly = true
	d.publish(t, s, vro, ro)

	if err := os.WriteFile(filepath.Join(a, "from-a.txt"), []byte("written by pod a\n"), 0o644); err != nil {
		t.Fatalf("writing through target a: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(b, "from-a.txt"))
		if err == nil && string(data) == "written by pod a\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target b does not show what a wrote: %q, %v", data, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(ro, "nope.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing through the read-only target: %v, want EROFS", err)
	}
	if data, err := os.ReadFile(filepath.Join(ro, "a.csv")); err != nil || string(data) != "x,y\n1,2\n" {
		t.Errorf("reading through the read-only target: %q, %v", data, err)
	}
	// A pod with fsGroup 4321: every file is in that group.
	grp := filepath.Join(targets, "pod-d", "mount")
	vg := v
	vg.group = "4321"
	d.publish(t, s, vg, grp)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(grp, "a.csv"), &st); err != nil || st.Gid != 4321 {
		t.Errorf("a file of the pod with fsGroup 4321 has gid %d (%v), want 4321", st.Gid, err)
	}

	page := scrapeCSI(t, d)
	for _, target := range []string{a, b, ro, grp} {
		if !hasSample(page, "bucketfs_store_requests_total", `volume_id="vol-two"`, `target="`+target+`"`) {
			t.Errorf("the driver's metrics have no bucketfs_store_requests_total of target %s:\n%s", target, clip(page))
		}
	}
	if !strings.Contains(page, "bucketfs_csi_mounts 4") {
		t.Errorf("the driver's metrics do not count 4 mounts")
	}

	if err := d.unpublish(t, v.id, a); err != nil {
		t.Fatalf("NodeUnpublishVolume a: %v", err)
	}
	if err := d.unpublish(t, v.id, a); err != nil {
		t.Errorf("NodeUnpublishVolume a again (must be idempotent): %v", err)
	}
	if isMounted(t, a) {
		t.Errorf("%s is still mounted", a)
	}
	if data, err := os.ReadFile(filepath.Join(b, "a.csv")); err != nil || string(data) != "x,y\n1,2\n" {
		t.Errorf("target b after unpublishing a: %q, %v", data, err)
	}
}

// readAt reads len(want) bytes at off from f and compares.
func readAt(f *os.File, off int64, want []byte) error {
	buf := make([]byte, len(want))
	// Drop the page cache so the read goes to the mount.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	n, err := f.ReadAt(buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		return err
	}
	if !bytes.Equal(buf, want) {
		return errors.New("wrong bytes")
	}
	return nil
}

// TestCSIDriverRestart restarts the driver while a reader has a file open
// on one of its volumes.
//
//  1. The driver alone dies (kill -9) and comes back: the mount's daemon is
//     a process of its own, so the reader keeps reading right through it,
//     and the new driver adopts the mount (it unpublishes it at the end).
//  2. The driver and the mount's daemon die together, as when the driver's
//     container is killed: the open file fails ("Transport endpoint is not
//     connected", which no driver can mend), and the new driver mounts the
//     volume again at the same target, so a file opened from then on reads
//     right (the recovery docs/KUBERNETES.md describes).
func TestCSIDriverRestart(t *testing.T) {
	s := need(t)
	needRoot(t)
	bkt := s.bucket("csirestart")
	big := pseudoRandom(7, 8<<20)
	if _, err := s.s3.do(t.Context(), http.MethodPut, bkt, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.s3.put(t.Context(), bkt, "big.bin", big); err != nil {
		t.Fatal(err)
	}
	// The keys come from the volume's secret, so mounting again after
	// the restart needs what the driver kept of them.
	env := s.csiEnv()
	stateDir := t.TempDir()
	d1 := s.startCSI(t, stateDir, env)
	target := filepath.Join(s.csiTargets(t), "pod", "mount")
	v := csiVolume{id: "vol-restart", attrs: s.testAttrs("s3://"+bkt, "cache_size=2MiB"),
		secrets: map[string]string{"access_key_id": s.access, "secret_access_key": s.secret}}
	d1.publish(t, s, v, target)

	f, err := os.Open(filepath.Join(target, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const chunk = 256 << 10
	off := int64(0)
	next := func() error { // the reader's next chunk, wrapping around
		o := off % int64(len(big))
		off += 3 * chunk
		return readAt(f, o, big[o:o+chunk])
	}
	for range 4 {
		if err := next(); err != nil {
			t.Fatalf("reading before the restart: %v", err)
		}
	}

	// 1. Only the driver dies.
	d1.stop(t, syscall.SIGKILL)
	for range 8 {
		if err := next(); err != nil {
			t.Fatalf("reading while the driver is down: %v", err)
		}
	}
	d2 := s.startCSI(t, stateDir, env)
	for range 4 {
		if err := next(); err != nil {
			t.Fatalf("reading after the driver came back: %v", err)
		}
	}
	if data, _ := os.ReadFile(d2.log); !bytes.Contains(data, []byte("adopted a running mount")) {
		t.Error("the restarted driver did not adopt the mount")
	}
	if page := scrapeCSI(t, d2); !hasSample(page, "bucketfs_store_requests_total", `target="`+target+`"`) {
		t.Errorf("the restarted driver serves no metrics of the adopted mount")
	}

	// 2. The driver and the daemon die together.
	pid := daemonPID(t, target)
	d2.stop(t, syscall.SIGKILL)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); processAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatal("the daemon outlived SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := next(); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("reading the open file after its daemon died: %v, want Transport endpoint is not connected", err)
	}
	d3 := s.startCSI(t, stateDir, env)
	if data, _ := os.ReadFile(d3.log); !bytes.Contains(data, []byte("mounting again")) {
		t.Error("the restarted driver did not mount the dead target again")
	}
	g, err := os.Open(filepath.Join(target, "big.bin"))
	if err != nil {
		t.Fatalf("opening the file again after the driver mounted the volume again: %v", err)
	}
	defer g.Close()
	for o := int64(0); o < int64(len(big)); o += 1 << 20 {
		if err := readAt(g, o, big[o:o+chunk]); err != nil {
			t.Fatalf("reading the reopened file at %d: %v", o, err)
		}
	}
	if err := next(); err == nil {
		t.Error("the file opened on the dead mount reads again: the test's premise is wrong")
	}
	f.Close()
	if err := d3.unpublish(t, v.id, target); err != nil {
		t.Fatalf("NodeUnpublishVolume after the restarts: %v", err)
	}
	if isMounted(t, target) {
		t.Error("still mounted after NodeUnpublishVolume")
	}
}
