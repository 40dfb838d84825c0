package csi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPodToken(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want, wantErr string
	}{
		{"ok", `{"sts.amazonaws.com":{"token":"jwt","expirationTimestamp":"2030-01-01T00:00:00Z"}}`, "jwt", ""},
		{"missing", "", "", "add tokenRequests: [{audience: sts.amazonaws.com}]"},
		{"other audience", `{"vault":{"token":"x","expirationTimestamp":"2030-01-01T00:00:00Z"}}`, "", `got tokens for ["vault"]`},
		{"not json", `{`, "", "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podToken("v", tc.raw)
			if tc.wantErr != "" {
				if _, ok := err.(invalid); !ok || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%v, want an invalid with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSessionName(t *testing.T) {
	for _, tc := range []struct {
		pod  podInfo
		want string
	}{
		{podInfo{name: "rs-session-1", namespace: "rstudio"}, "bucketfs-rstudio-rs-session-1"},
		{podInfo{}, "bucketfs"},
		{podInfo{name: strings.Repeat("x", 80), namespace: "n s"}, ("bucketfs-ns-" + strings.Repeat("x", 80))[:64]},
	} {
		if got := sessionName(tc.pod); got != tc.want {
			t.Errorf("sessionName(%+v) = %q, want %q", tc.pod, got, tc.want)
		}
	}
}

// TestStateFiles: records round-trip, credential files are 0600 in a 0700
// directory, and forget removes them all.
func TestStateFiles(t *testing.T) {
	st := state{dir: filepath.Join(t.TempDir(), "state")}
	if err := st.init(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(st.dir, "volumes")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("volumes dir: %v %v, want 0700", fi.Mode().Perm(), err)
	}
	r := record{VolumeID: "v", Target: "/t/mount", Source: "s3://b/p", Identity: IdentitySecret, MetricsAddr: "127.0.0.1:1"}
	if err := st.save(r); err != nil {
		t.Fatal(err)
	}
	keys := st.path("volumes", r.Target, ".keys")
	if err := writeFile(keys, []byte(`{"access_key_id":"A"}`)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keys); fi.Mode().Perm() != 0o600 {
		t.Errorf("keys file mode %v, want 0600", fi.Mode().Perm())
	}
	got, ok, err := st.load(r.Target)
	if err != nil || !ok || got.VolumeID != "v" || got.Source != "s3://b/p" {
		t.Fatalf("load: %+v %v %v", got, ok, err)
	}
	all, _ := st.all()
	if len(all) != 1 {
		t.Fatalf("all: %d records, want 1", len(all))
	}
	st.forget(r.Target)
	left, _ := filepath.Glob(filepath.Join(st.dir, "volumes", "*"))
	if len(left) != 0 {
		t.Errorf("forget left %v", left)
	}
}
