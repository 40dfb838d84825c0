package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// everySource sets up all five sources at once, each with its own key id,
// as on a host where keys linger in the environment of an instance with a
// role.
func everySource(t *testing.T) {
	t.Helper()
	setEnvKeys(t)
	setShared(t, "[default]\nregion = eu-west-1\n", "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profileSecret12345\n")
	sts := serve(t, &fakeSTS{akid: "AKIDWEB", secret: testSecret, token: testToken})
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/web")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeFile(t, filepath.Join(t.TempDir(), "token"), "the-jwt"))
	container := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": "AKIDCONTAINER", "SecretAccessKey": testSecret, "Token": testToken,
			"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	}))
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.URL+"/creds")
	useIMDS(t, &fakeIMDS{role: "bucketfs-role", region: "eu-north-1", akid: "AKIDINSTANCE", secret: testSecret})
}

func TestForcedSource(t *testing.T) {
	for _, tc := range []struct {
		source   string
		profile  string
		wantAKID string
		wantSrc  string
	}{
		{"", "", testAKID, "environment (AWS_ACCESS_KEY_ID)"},
		{"chain", "", testAKID, "environment (AWS_ACCESS_KEY_ID)"},
		{SourceEnv, "", testAKID, "environment (AWS_ACCESS_KEY_ID)"},
		// Without --profile the default profile, ahead of the env keys.
		{SourceProfile, "", "AKIDPROFILE", "profile default"},
		{SourceWebIdentity, "", "AKIDWEB", "web identity (arn:aws:iam::123456789012:role/web)"},
		{SourceContainer, "", "AKIDCONTAINER", "container"},
		{SourceInstance, "", "AKIDINSTANCE", "instance role bucketfs-role"},
		// --profile with a forced non-profile source: the source wins,
		// the profile still gives the region.
		{SourceInstance, "default", "AKIDINSTANCE", "instance role bucketfs-role"},
	} {
		t.Run(tc.source+"/"+tc.profile, func(t *testing.T) {
			isolate(t)
			everySource(t)
			res := mustLoad(t, Options{Credentials: tc.source, Profile: tc.profile, Region: "us-east-1"})
			creds, err := res.Config.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if creds.AccessKeyID != tc.wantAKID || res.Source != tc.wantSrc {
				t.Errorf("key id %q from %q, want %q from %q", creds.AccessKeyID, res.Source, tc.wantAKID, tc.wantSrc)
			}
			if tc.wantAKID != testAKID && tc.wantAKID != "AKIDPROFILE" && res.Expires.IsZero() {
				t.Errorf("Expires not set for temporary credentials")
			}
		})
	}
}

func TestForcedSourceMissing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source string
		opts   Options
		setup  func(t *testing.T)
		want   string // prefix of the Explain line
	}{
		{"env without keys", SourceEnv, Options{}, func(t *testing.T) {},
			"--credentials env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set: export both, or pick another --credentials source"},
		{"env without secret", SourceEnv, Options{}, func(t *testing.T) { t.Setenv("AWS_ACCESS_KEY_ID", testAKID) },
			"--credentials env: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
		{"profile without keys", SourceProfile, Options{}, func(t *testing.T) {
			setEnvKeys(t)
			setShared(t, "[default]\nregion = eu-west-1\n", "")
			useIMDS(t, &fakeIMDS{role: "r", akid: "AKIDINSTANCE", secret: testSecret})
		}, `--credentials profile: profile "default" in `},
		{"unknown profile", SourceProfile, Options{Profile: "nope"}, func(t *testing.T) { setEnvKeys(t) },
			`profile "nope" is not in `},
		{"web identity without token file", SourceWebIdentity, Options{}, func(t *testing.T) { setEnvKeys(t) },
			"--credentials web-identity: AWS_WEB_IDENTITY_TOKEN_FILE is not set"},
		{"container without URI", SourceContainer, Options{}, func(t *testing.T) { setEnvKeys(t) },
			"--credentials container: neither AWS_CONTAINER_CREDENTIALS_FULL_URI nor AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set"},
		{"container over plain http to a remote host", SourceContainer, Options{}, func(t *testing.T) {
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://203.0.113.9/creds")
		}, "AWS_CONTAINER_CREDENTIALS_FULL_URI http://203.0.113.9/creds is plain http to a host that is not loopback"},
		{"metadata disabled", SourceInstance, Options{}, func(t *testing.T) { setEnvKeys(t) },
			"--credentials instance-role: instance metadata is disabled by AWS_EC2_METADATA_DISABLED=true"},
		{"metadata without role", SourceInstance, Options{}, func(t *testing.T) {
			setEnvKeys(t)
			useIMDS(t, &fakeIMDS{region: "eu-west-1"})
		}, "--credentials instance-role: instance metadata at http://127.0.0.1:"},
		{"metadata unreachable", SourceInstance, Options{}, func(t *testing.T) {
			setEnvKeys(t)
			unsetenv(t, "AWS_EC2_METADATA_DISABLED")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
		}, "--credentials instance-role: instance metadata at http://127.0.0.1:1 gave no credentials"},
		{"not a source", "bogus", Options{}, func(t *testing.T) { setEnvKeys(t) },
			`--credentials "bogus" is not a source: use env, profile, web-identity, container, instance-role`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			tc.setup(t)
			tc.opts.Credentials = tc.source
			tc.opts.Region = "us-east-1"
			start := time.Now()
			_, err := Load(context.Background(), tc.opts)
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("Load took %s", d)
			}
			if !errors.Is(err, store.ErrAuth) {
				t.Fatalf("err = %v, want store.ErrAuth", err)
			}
			line := Explain(err)
			if !strings.HasPrefix(line, tc.want) || strings.ContainsAny(line, "\r\n") {
				t.Errorf("Explain =\n%q\nwant one line starting\n%q", line, tc.want)
			}
			if strings.Contains(line, testSecret) {
				t.Errorf("secret in %q", line)
			}
		})
	}
}
