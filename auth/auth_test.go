package auth

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/bucketfs/bucketfs/store"
)

const (
	testAKID   = "AKIDTESTEXAMPLE0001"
	testSecret = "s3cr3t/TESTKEY+doNotLeak0123456789abcdef"
	testToken  = "SESSIONTOKEN-doNotLeak-987654321"
)

func setEnvKeys(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", testAKID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
}

func mustLoad(t *testing.T, o Options) Result {
	t.Helper()
	res, err := Load(context.Background(), o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

func TestRegionOrder(t *testing.T) {
	type tc struct {
		name       string
		flag       string
		env        map[string]string
		profile    string // Options.Profile
		config     string
		imds       *fakeIMDS // nil: instance metadata disabled
		wantRegion string
		wantSource string
	}
	const allConfig = "[default]\nregion = ap-south-1\n"
	cases := []tc{
		{
			name: "flag beats everything", flag: "eu-west-1",
			env:    map[string]string{"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-1"},
			config: allConfig, imds: &fakeIMDS{region: "sa-east-1"},
			wantRegion: "eu-west-1", wantSource: "--region",
		},
		{
			name:   "AWS_REGION beats AWS_DEFAULT_REGION and profile",
			env:    map[string]string{"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-1"},
			config: allConfig, imds: &fakeIMDS{region: "sa-east-1"},
			wantRegion: "us-west-2", wantSource: "AWS_REGION",
		},
		{
			name:   "AWS_DEFAULT_REGION beats profile",
			env:    map[string]string{"AWS_DEFAULT_REGION": "us-west-1"},
			config: allConfig, imds: &fakeIMDS{region: "sa-east-1"},
			wantRegion: "us-west-1", wantSource: "AWS_DEFAULT_REGION",
		},
		{
			name:   "default profile region beats instance metadata",
			config: allConfig, imds: &fakeIMDS{region: "sa-east-1"},
			wantRegion: "ap-south-1", wantSource: "profile default",
		},
		{
			name:       "named profile region",
			profile:    "work",
			config:     allConfig + "[profile work]\nregion = ca-central-1\naws_access_key_id = AKIDWORK\naws_secret_access_key = workSecretKey123\n",
			wantRegion: "ca-central-1", wantSource: "profile work",
		},
		{
			name:       "AWS_PROFILE selects the profile region",
			env:        map[string]string{"AWS_PROFILE": "work"},
			config:     allConfig + "[profile work]\nregion = ca-central-1\n",
			wantRegion: "ca-central-1", wantSource: "profile work",
		},
		{
			name:       "instance metadata when nothing else",
			imds:       &fakeIMDS{region: "sa-east-1"},
			wantRegion: "sa-east-1", wantSource: "instance metadata",
		},
		{
			name:       "default when metadata has no region",
			imds:       &fakeIMDS{},
			wantRegion: "us-east-1", wantSource: "default us-east-1",
		},
		{
			name:       "default when metadata disabled",
			wantRegion: "us-east-1", wantSource: "default us-east-1",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			isolate(t)
			setEnvKeys(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			setShared(t, c.config, "")
			if c.imds != nil {
				useIMDS(t, c.imds)
			}
			res := mustLoad(t, Options{Region: c.flag, Profile: c.profile})
			if res.Region != c.wantRegion || res.RegionSource != c.wantSource {
				t.Errorf("region %q from %q, want %q from %q", res.Region, res.RegionSource, c.wantRegion, c.wantSource)
			}
			if res.Config.Region != c.wantRegion {
				t.Errorf("Config.Region = %q, want %q", res.Config.Region, c.wantRegion)
			}
			if c.imds != nil && c.wantSource != "instance metadata" && c.wantSource != "default us-east-1" {
				if _, gets, _ := c.imds.counts(); gets != 0 {
					t.Errorf("instance metadata asked %d times though a region was configured", gets)
				}
			}
		})
	}
}

func TestIMDSRegionBounded(t *testing.T) {
	isolate(t)
	setEnvKeys(t)
	useIMDS(t, &fakeIMDS{hangRegion: true})
	old := imdsRegionTimeout
	imdsRegionTimeout = 300 * time.Millisecond
	t.Cleanup(func() { imdsRegionTimeout = old })

	start := time.Now()
	res := mustLoad(t, Options{})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Load took %s with a hanging metadata service", d)
	}
	if res.Region != "us-east-1" || res.RegionSource != "default us-east-1" {
		t.Errorf("region %q from %q", res.Region, res.RegionSource)
	}
}

func TestEnvCredentials(t *testing.T) {
	for _, tc := range []struct {
		name       string
		token      string
		wantSource string
	}{
		{"keys only", "", "environment (AWS_ACCESS_KEY_ID)"},
		{"with session token", testToken, "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			setEnvKeys(t)
			if tc.token != "" {
				t.Setenv("AWS_SESSION_TOKEN", tc.token)
			}
			// A profile with other keys must not win over the environment
			// when no --profile is given.
			setShared(t, "", "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profileSecret123\n")
			res := mustLoad(t, Options{Region: "us-east-1"})
			if res.Source != tc.wantSource {
				t.Errorf("Source = %q, want %q", res.Source, tc.wantSource)
			}
			creds, err := res.Config.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if creds.AccessKeyID != testAKID || creds.SecretAccessKey != testSecret || creds.SessionToken != tc.token {
				t.Errorf("got key id %q, session token %q", creds.AccessKeyID, creds.SessionToken)
			}
		})
	}
}

func TestProfileCredentials(t *testing.T) {
	const credsFile = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = defaultSecret123\n" +
		"[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = workSecret12345\n"
	for _, tc := range []struct {
		name     string
		opts     Options
		env      map[string]string
		wantAKID string
		wantSrc  string
	}{
		{"default profile", Options{}, nil, "AKIDDEFAULT", "profile default"},
		{"--profile", Options{Profile: "work"}, nil, "AKIDWORK", "profile work"},
		{"AWS_PROFILE", Options{}, map[string]string{"AWS_PROFILE": "work"}, "AKIDWORK", "profile work"},
		{"--profile beats AWS_PROFILE", Options{Profile: "work"}, map[string]string{"AWS_PROFILE": "default"}, "AKIDWORK", "profile work"},
		// As in the AWS CLI, an explicit --profile wins over keys in the
		// environment.
		{"--profile beats env keys", Options{Profile: "work"}, map[string]string{"AWS_ACCESS_KEY_ID": testAKID, "AWS_SECRET_ACCESS_KEY": testSecret}, "AKIDWORK", "profile work"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			setShared(t, "", credsFile)
			tc.opts.Region = "us-east-1"
			res := mustLoad(t, tc.opts)
			if res.Source != tc.wantSrc {
				t.Errorf("Source = %q, want %q", res.Source, tc.wantSrc)
			}
			creds, err := res.Config.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if creds.AccessKeyID != tc.wantAKID {
				t.Errorf("key id %q, want %q", creds.AccessKeyID, tc.wantAKID)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	const configText = "[profile chain]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = missing\n" +
		"[profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = baseSecret12345\n" +
		"[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\nmfa_serial = arn:aws:iam::123456789012:mfa/u\n"
	for _, tc := range []struct {
		name string
		opts Options
		env  map[string]string
		want string // prefix of the Explain line
	}{
		{"unknown --profile", Options{Profile: "nope"}, nil, `profile "nope" is not in `},
		{"unknown AWS_PROFILE", Options{}, map[string]string{"AWS_PROFILE": "nope"}, `profile "nope" is not in `},
		{"unknown profile beside env keys", Options{Profile: "nope"}, map[string]string{"AWS_ACCESS_KEY_ID": testAKID, "AWS_SECRET_ACCESS_KEY": testSecret}, `profile "nope" is not in `},
		{"missing source_profile", Options{Profile: "chain"}, nil, `profile "chain" assumes role arn:aws:iam::123456789012:role/r but its source_profile "missing"`},
		{"mfa", Options{Profile: "mfa"}, nil, `profile "mfa" needs an MFA code`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			setShared(t, configText, "")
			_, err := Load(context.Background(), tc.opts)
			if !errors.Is(err, store.ErrAuth) {
				t.Fatalf("err = %v, want store.ErrAuth", err)
			}
			line := Explain(err)
			if !strings.HasPrefix(line, tc.want) {
				t.Errorf("Explain = %q, want prefix %q", line, tc.want)
			}
			if strings.Contains(line, "\n") {
				t.Errorf("Explain has several lines: %q", line)
			}
			if tc.want == `profile "nope" is not in ` && !strings.Contains(line, credentialsFile()) {
				t.Errorf("Explain does not name the credentials file: %q", line)
			}
		})
	}
}

func TestNoCredentials(t *testing.T) {
	want := `no AWS credentials found (tried environment variables, shared config files for profile "default", web identity, container and instance metadata): ` +
		"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use --profile, or run on an instance with an IAM role"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"metadata answers 404", func(t *testing.T) { useIMDS(t, http.NotFoundHandler()) }},
		{"metadata has no role", func(t *testing.T) { useIMDS(t, &fakeIMDS{region: "eu-west-1"}) }},
		{"metadata disabled", func(t *testing.T) {}},
		{"profile without keys", func(t *testing.T) {
			setShared(t, "[default]\nregion = eu-west-1\n", "")
			useIMDS(t, http.NotFoundHandler())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			tc.setup(t)
			start := time.Now()
			_, err := Load(context.Background(), Options{})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Load took %s", d)
			}
			if !errors.Is(err, store.ErrAuth) {
				t.Fatalf("err = %v, want store.ErrAuth", err)
			}
			if got := Explain(err); got != want {
				t.Errorf("Explain =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestInstanceRole(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v1Only bool
	}{
		{"IMDSv2", false},
		{"IMDSv1 fallback", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			fake := &fakeIMDS{v1Only: tc.v1Only, role: "bucketfs-role", region: "eu-north-1", akid: "AKIDINSTANCE", secret: testSecret}
			useIMDS(t, fake)
			logs := &lockedBuffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

			res := mustLoad(t, Options{Logger: log})
			if res.Source != "instance role bucketfs-role" {
				t.Errorf("Source = %q", res.Source)
			}
			if res.Region != "eu-north-1" || res.RegionSource != "instance metadata" {
				t.Errorf("region %q from %q", res.Region, res.RegionSource)
			}
			creds, err := res.Config.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if creds.AccessKeyID != "AKIDINSTANCE" || !creds.CanExpire {
				t.Errorf("creds key id %q, CanExpire %v", creds.AccessKeyID, creds.CanExpire)
			}
			puts, gets, noToken := fake.counts()
			if puts == 0 || gets < 3 {
				t.Errorf("token PUTs %d, GETs %d: metadata not used as expected", puts, gets)
			}
			if tc.v1Only && noToken != gets {
				t.Errorf("IMDSv1: %d of %d GETs carried a token", gets-noToken, gets)
			}
			if !tc.v1Only && noToken != 0 {
				t.Errorf("IMDSv2: %d GETs without token", noToken)
			}
			out := logs.String()
			if !strings.Contains(out, "credentials from instance role") || !strings.Contains(out, "expires=") {
				t.Errorf("debug log lacks the credentials line:\n%s", out)
			}
			if strings.Contains(out, testSecret) {
				t.Errorf("log contains the secret key:\n%s", out)
			}
		})
	}
}

func TestContainerCredentials(t *testing.T) {
	isolate(t)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "container-auth" {
			http.Error(w, "no auth", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": "AKIDCONTAINER", "SecretAccessKey": testSecret, "Token": testToken,
			"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	}))
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/creds")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth")
	res := mustLoad(t, Options{Region: "us-east-1"})
	if res.Source != "container" {
		t.Errorf("Source = %q", res.Source)
	}
}

func TestCredentialsTimeout(t *testing.T) {
	isolate(t)
	srv := serveHanging(t)
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/creds")
	old := credentialsTimeout
	credentialsTimeout = 300 * time.Millisecond
	t.Cleanup(func() { credentialsTimeout = old })

	start := time.Now()
	_, err := Load(context.Background(), Options{Region: "us-east-1"})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Load took %s", d)
	}
	if !errors.Is(err, store.ErrAuth) {
		t.Fatalf("err = %v", err)
	}
	if got := Explain(err); !strings.HasPrefix(got, "the container credentials endpoint") || !strings.Contains(got, "no answer within 300ms") {
		t.Errorf("Explain = %q", got)
	}
}

func TestCallerCancel(t *testing.T) {
	isolate(t)
	srv := serveHanging(t)
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/creds")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Load(ctx, Options{Region: "us-east-1"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrAuth) {
		t.Errorf("err = %v, want the caller's context error, not ErrAuth", err)
	}
}

func TestWebIdentity(t *testing.T) {
	isolate(t)
	sts := &fakeSTS{akid: "AKIDWEB", secret: testSecret, token: testToken}
	srv := serve(t, sts)
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/web")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeFile(t, filepath.Join(dir, "token"), "the-jwt"))

	res := mustLoad(t, Options{Region: "us-east-1"})
	if res.Source != "web identity (arn:aws:iam::123456789012:role/web)" {
		t.Errorf("Source = %q", res.Source)
	}
	actions, _, tokens := sts.calls()
	if len(actions) != 1 || actions[0] != "AssumeRoleWithWebIdentity" || tokens[0] != "the-jwt" {
		t.Errorf("STS calls %v with tokens %v", actions, tokens)
	}

	// A token file that vanished gets a line naming web identity.
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", filepath.Join(dir, "gone"))
	_, err := Load(context.Background(), Options{Region: "us-east-1"})
	if got := Explain(err); !errors.Is(err, store.ErrAuth) || !strings.HasPrefix(got, "web identity login as arn:aws:iam::123456789012:role/web failed") {
		t.Errorf("err %v, Explain %q", err, got)
	}
}

func TestAssumeRoleProfile(t *testing.T) {
	const configText = "[profile base]\nregion = us-east-1\n" +
		"[profile work]\nrole_arn = arn:aws:iam::123456789012:role/work\nsource_profile = base\n"
	const credsText = "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = " + testSecret + "\n"
	for _, tc := range []struct {
		name       string
		errCode    string
		wantSource string
		wantLine   string
	}{
		{name: "ok", wantSource: "profile work (assume role arn:aws:iam::123456789012:role/work)"},
		{name: "source key unknown", errCode: "InvalidClientTokenId",
			wantLine: `assuming role arn:aws:iam::123456789012:role/work for profile "work" failed: the server does not know this access key id (InvalidClientTokenId)`},
		{name: "not allowed to assume", errCode: "AccessDenied",
			wantLine: `assuming role arn:aws:iam::123456789012:role/work for profile "work" failed (AccessDenied: fake sts says no): check the source profile's keys, the role's trust policy`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			setShared(t, configText, credsText)
			sts := &fakeSTS{akid: "AKIDROLE", secret: "roleSecret12345", token: "roleToken12345", errCode: tc.errCode}
			t.Setenv("AWS_ENDPOINT_URL_STS", serve(t, sts).URL)
			res, err := Load(context.Background(), Options{Profile: "work", Region: "eu-west-1"})
			actions, authz, _ := sts.calls()
			if len(actions) == 0 || actions[0] != "AssumeRole" || !strings.Contains(authz[0], "Credential=AKIDBASE/") {
				t.Errorf("STS calls %v, authorization %v", actions, authz)
			}
			if tc.errCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.Source != tc.wantSource {
					t.Errorf("Source = %q, want %q", res.Source, tc.wantSource)
				}
				return
			}
			if !errors.Is(err, store.ErrAuth) {
				t.Fatalf("err = %v", err)
			}
			if got := Explain(err); !strings.HasPrefix(got, tc.wantLine) {
				t.Errorf("Explain =\n%q\nwant prefix\n%q", got, tc.wantLine)
			}
			for _, s := range []string{Explain(err), err.Error()} {
				if strings.Contains(s, testSecret) {
					t.Errorf("message contains the source secret: %q", s)
				}
			}
		})
	}
}

func TestHTTPClientAndRetryer(t *testing.T) {
	for _, tc := range []struct{ maxConns, want int }{{0, 64}, {8, 8}, {200, 200}} {
		isolate(t)
		setEnvKeys(t)
		res := mustLoad(t, Options{Region: "us-east-1", MaxConns: tc.maxConns})
		bc, ok := res.Config.HTTPClient.(*awshttp.BuildableClient)
		if !ok {
			t.Fatalf("HTTPClient is %T, want *awshttp.BuildableClient", res.Config.HTTPClient)
		}
		tr := bc.GetTransport()
		if tr.MaxConnsPerHost != tc.want || tr.MaxIdleConnsPerHost != tc.want || tr.MaxIdleConns < tc.want {
			t.Errorf("MaxConns %d: per host %d, idle per host %d, idle %d", tc.maxConns, tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
		}
		if tr.ResponseHeaderTimeout != responseHeaderTimeout || tr.TLSHandshakeTimeout == 0 || bc.GetDialer().Timeout == 0 || bc.GetDialer().KeepAlive <= 0 {
			t.Errorf("timeouts: header %s, TLS %s, dial %s, keep-alive %s", tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout, bc.GetDialer().Timeout, bc.GetDialer().KeepAlive)
		}
		if got := res.Config.Retryer().MaxAttempts(); got != maxAttempts {
			t.Errorf("retryer MaxAttempts = %d", got)
		}
		if _, ok := res.Config.Credentials.(interface {
			Invalidate()
		}); !ok {
			t.Errorf("Credentials is %T, want a credentials cache", res.Config.Credentials)
		}
	}
}

// TestCABundle checks AWS_CA_BUNDLE reaches the client Load builds: a TLS
// server with a private certificate is trusted only through the bundle.
func TestCABundle(t *testing.T) {
	isolate(t)
	setEnvKeys(t)
	srv := newTLSServer(t)
	get := func(res Result) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
		resp, err := res.Config.HTTPClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	unsetenv(t, "AWS_CA_BUNDLE")
	if err := get(mustLoad(t, Options{Region: "us-east-1"})); err == nil {
		t.Fatal("private certificate trusted without AWS_CA_BUNDLE; the test proves nothing")
	}
	pemText := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	t.Setenv("AWS_CA_BUNDLE", writeFile(t, filepath.Join(t.TempDir(), "ca.pem"), string(pemText)))
	if err := get(mustLoad(t, Options{Region: "us-east-1"})); err != nil {
		t.Errorf("GET with AWS_CA_BUNDLE: %v", err)
	}
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flag    string
		env     map[string]string
		config  string
		want    string
		wantErr bool
	}{
		{name: "none", want: ""},
		{name: "flag wins", flag: "http://127.0.0.1:7070/", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://s3.example", "AWS_ENDPOINT_URL": "http://all.example"}, want: "http://127.0.0.1:7070"},
		{name: "AWS_ENDPOINT_URL_S3", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://s3.example", "AWS_ENDPOINT_URL": "http://all.example"}, want: "http://s3.example"},
		{name: "AWS_ENDPOINT_URL", env: map[string]string{"AWS_ENDPOINT_URL": "https://all.example:9000"}, want: "https://all.example:9000"},
		{name: "profile services section", config: "[default]\nservices = local\n[services local]\ns3 =\n  endpoint_url = http://profile-s3.example\n", want: "http://profile-s3.example"},
		{name: "profile endpoint_url", config: "[default]\nendpoint_url = http://profile.example\n", want: "http://profile.example"},
		{name: "ignore configured", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://s3.example", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, want: ""},
		{name: "not a URL", flag: "localhost:9000", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			setEnvKeys(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			setShared(t, tc.config, "")
			res, err := Load(context.Background(), Options{Region: "us-east-1", EndpointURL: tc.flag})
			if tc.wantErr {
				if err == nil || !strings.Contains(Explain(err), "--endpoint-url") {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Endpoint != tc.want {
				t.Errorf("Endpoint = %q, want %q", res.Endpoint, tc.want)
			}
		})
	}
}
