package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	whoamiAKID   = "AKIDWHOAMITEST01"
	whoamiSecret = "whoamiSecret/doNotLeak+0123456789abc"
	whoamiToken  = "whoamiSessionToken-doNotLeak-42"
)

// whoamiEnv clears AWS_* (but AWS_CA_BUNDLE), points the shared files at
// empty temp files, disables instance metadata and sets test keys.
func whoamiEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") && k != "AWS_CA_BUNDLE" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	for _, k := range []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		f := filepath.Join(dir, k)
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(k, f)
	}
	t.Setenv("HOME", dir)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", whoamiAKID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", whoamiSecret)
}

// fakeS3STS is one endpoint that may speak STS GetCallerIdentity (like AWS
// behind one URL) or answer it 405 (like versitygw), and answers
// ListBuckets with two buckets or with an error code.
type fakeS3STS struct {
	sts        bool
	listCode   string // "" lists two buckets
	listStatus int
}

func (f fakeS3STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	if r.Method == http.MethodPost {
		r.ParseForm()
		if !f.sts || r.Form.Get("Action") != "GetCallerIdentity" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			fmt.Fprint(w, `<Error><Code>MethodNotAllowed</Code><Message>The specified method is not allowed against this resource.</Message></Error>`)
			return
		}
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/alice</Arn><UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		if f.listCode != "" {
			w.WriteHeader(f.listStatus)
			fmt.Fprintf(w, `<Error><Code>%s</Code><Message>fake says no</Message></Error>`, f.listCode)
			return
		}
		fmt.Fprint(w, `<ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket><Bucket><Name>b</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>`)
		return
	}
	http.NotFound(w, r)
}

func TestWhoami(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fake      fakeS3STS
		args      []string
		env       map[string]string
		wantCode  int
		wantOut   []string       // lines stdout must contain
		wantErr   *regexp.Regexp // the one stderr line; nil: stderr empty
		noEndpont bool
	}{
		{name: "STS and buckets", fake: fakeS3STS{sts: true}, wantCode: 0,
			wantOut: []string{
				"credentials   environment (AWS_ACCESS_KEY_ID)",
				"expires       never (long-term keys)",
				"account       123456789012",
				"arn           arn:aws:iam::123456789012:user/alice",
				"region        us-east-1 (from --region)",
				"list buckets  allowed (2 buckets)",
				"verdict       the credentials work",
			}},
		{name: "no STS at the endpoint", fake: fakeS3STS{}, wantCode: 0,
			wantOut: []string{"identity      STS not available at this endpoint (MethodNotAllowed)", "list buckets  allowed (2 buckets)"}},
		{name: "session token shown as source", fake: fakeS3STS{}, env: map[string]string{"AWS_SESSION_TOKEN": whoamiToken}, wantCode: 0,
			wantOut: []string{"credentials   environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)"}},
		{name: "list denied", fake: fakeS3STS{listCode: "AccessDenied", listStatus: 403}, wantCode: 0,
			wantOut: []string{"list buckets  denied"},
			wantErr: regexp.MustCompile(`^bucketfs whoami: the credentials may not list buckets \(AccessDenied, needs s3:ListAllMyBuckets\): grant it, or mount a single bucket with s3://BUCKET$`)},
		{name: "wrong secret", fake: fakeS3STS{listCode: "SignatureDoesNotMatch", listStatus: 403}, wantCode: 1,
			wantOut: []string{"list buckets  failed", "verdict       the credentials do not work"},
			wantErr: regexp.MustCompile(`^bucketfs whoami: the secret access key does not match the access key id \(SignatureDoesNotMatch\): check AWS_SECRET_ACCESS_KEY`)},
		{name: "unknown key", fake: fakeS3STS{listCode: "InvalidAccessKeyId", listStatus: 403}, wantCode: 1,
			wantErr: regexp.MustCompile(`^bucketfs whoami: the server does not know this access key id \(InvalidAccessKeyId\)`)},
		{name: "expired session token", fake: fakeS3STS{listCode: "ExpiredToken", listStatus: 400}, env: map[string]string{"AWS_SESSION_TOKEN": whoamiToken}, wantCode: 1,
			wantErr: regexp.MustCompile(`^bucketfs whoami: the session token has expired \(ExpiredToken\): get fresh credentials`)},
		{name: "unknown profile", fake: fakeS3STS{}, args: []string{"--profile", "nope"}, wantCode: 1,
			wantOut: []string{"credentials   none usable"},
			wantErr: regexp.MustCompile(`^bucketfs whoami: profile "nope" is not in .*: add it \(aws configure --profile nope\)`)},
		{name: "forced source missing", fake: fakeS3STS{}, args: []string{"--credentials", "web-identity"}, wantCode: 1,
			wantErr: regexp.MustCompile(`^bucketfs whoami: --credentials web-identity: AWS_WEB_IDENTITY_TOKEN_FILE is not set`)},
		{name: "metadata unreachable", fake: fakeS3STS{}, args: []string{"--credentials", "instance-role"},
			env:      map[string]string{"AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1"},
			wantCode: 1,
			wantErr:  regexp.MustCompile(`^bucketfs whoami: --credentials instance-role: instance metadata at http://127.0.0.1:1 gave no credentials \(.*\): run on an EC2 instance with an IAM role`)},
		{name: "server unreachable", noEndpont: true, args: []string{"--endpoint-url", "http://127.0.0.1:1"}, wantCode: 1,
			wantErr: regexp.MustCompile(`^bucketfs whoami: cannot reach S3 at http://127.0.0.1:1 \(.*connection refused\): check --endpoint-url`)},
		{name: "bad flag value", args: []string{"--credentials", "keys"}, noEndpont: true, wantCode: 2,
			wantErr: regexp.MustCompile(`^bucketfs whoami: --credentials "keys" is not a source`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			whoamiEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := []string{"whoami", "--region", "us-east-1"}
			if !tc.noEndpont {
				srv := httptest.NewServer(tc.fake)
				t.Cleanup(srv.Close)
				args = append(args, "--endpoint-url", srv.URL)
			}
			args = append(args, tc.args...)
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			t.Logf("exit %d\n%s%s", code, stdout.String(), stderr.String())
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			errText := strings.TrimSuffix(stderr.String(), "\n")
			switch {
			case tc.wantErr == nil && errText != "":
				t.Errorf("unexpected stderr %q", errText)
			case tc.wantErr != nil && (strings.Contains(errText, "\n") || !tc.wantErr.MatchString(errText)):
				t.Errorf("stderr %q is not one line matching %s", errText, tc.wantErr)
			}
			for _, s := range []string{whoamiSecret, whoamiToken} {
				if strings.Contains(stdout.String()+stderr.String(), s) {
					t.Errorf("output contains a secret")
				}
			}
		})
	}
}

func TestWhoamiJSON(t *testing.T) {
	whoamiEnv(t)
	srv := httptest.NewServer(fakeS3STS{sts: true})
	t.Cleanup(srv.Close)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"whoami", "--json", "--region", "eu-west-1", "--endpoint-url", srv.URL}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r whoamiReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	want := whoamiReport{Source: "environment (AWS_ACCESS_KEY_ID)", STS: "ok", Account: "123456789012",
		ARN: "arn:aws:iam::123456789012:user/alice", UserID: "AIDAEXAMPLE", Region: "eu-west-1", RegionSource: "--region",
		Endpoint: srv.URL, ListBuckets: "allowed", OK: true}
	if r.BucketCount == nil || *r.BucketCount != 2 {
		t.Errorf("bucket_count = %v", r.BucketCount)
	}
	r.BucketCount = nil
	if r != want {
		t.Errorf("report\n%+v\nwant\n%+v", r, want)
	}
}

// TestWhoamiTakesMountConnectionFlags: whoami accepts every connection and
// credential flag of mount, with the same meaning, so a user can check the
// very flags they mount with.
func TestWhoamiTakesMountConnectionFlags(t *testing.T) {
	args := []string{"--endpoint-url", "http://127.0.0.1:9", "--path-style", "--region", "eu-west-1", "--profile", "p", "--credentials", "env"}
	w, err := parseWhoamiArgs(args, io.Discard)
	if err != nil {
		t.Fatalf("whoami %q: %v", args, err)
	}
	m, err := parseMountArgs(append(append([]string{}, args...), "s3://b", "/mnt/x"), io.Discard)
	if err != nil {
		t.Fatalf("mount %q: %v", args, err)
	}
	if w.connFlags != m.connFlags {
		t.Errorf("whoami read %+v, mount %+v", w.connFlags, m.connFlags)
	}
	if _, err := parseWhoamiArgs([]string{"--credentials", "bogus"}, io.Discard); err == nil {
		t.Error("whoami accepted --credentials bogus")
	}
}
