package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// isolate clears every AWS_* variable except AWS_CA_BUNDLE (which this
// machine sets, and which must keep working), points the shared files at
// empty temp files and disables instance metadata. Tests then set only what
// they need. It returns the temp directory.
func isolate(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") && k != "AWS_CA_BUNDLE" {
			unsetenv(t, k)
		}
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", writeFile(t, filepath.Join(dir, "config"), ""))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", writeFile(t, filepath.Join(dir, "credentials"), ""))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return dir
}

// unsetenv removes k for the test and restores it afterwards.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "")
	os.Unsetenv(k)
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// setShared writes the shared config and credentials files.
func setShared(t *testing.T, configText, credentialsText string) {
	t.Helper()
	writeFile(t, os.Getenv("AWS_CONFIG_FILE"), configText)
	writeFile(t, os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), credentialsText)
}

// serve starts h on 127.0.0.1 and closes it when the test ends.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// serveHanging starts a server that never answers until the test ends. The
// SDK's credentials cache keeps retrieving after the caller's context is done
// (it hides the cancellation from the provider), so the handler must not
// wait for the client to go away, and stop must be closed before the
// server's Close, which waits for handlers: cleanups run last-in first-out.
func serveHanging(t *testing.T) *httptest.Server {
	t.Helper()
	stop := make(chan struct{})
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop) })
	return srv
}

func newTLSServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// useIMDS points the SDK's instance-metadata client at h.
func useIMDS(t *testing.T, h http.Handler) {
	t.Helper()
	srv := serve(t, h)
	unsetenv(t, "AWS_EC2_METADATA_DISABLED")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
}

const imdsToken = "fake-imds-token"

// fakeIMDS is an EC2 instance metadata service. With v1Only the token PUT is
// refused the way IMDSv1-only fakes and some proxies do; otherwise GETs
// without the token get 401, as on an instance that requires IMDSv2.
type fakeIMDS struct {
	v1Only     bool
	role       string // "" means no instance profile (404)
	region     string // "" means 404
	hangRegion bool
	akid       string
	secret     string

	mu          sync.Mutex
	tokenPuts   int
	gets        int
	getsNoToken int
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
		f.mu.Lock()
		f.tokenPuts++
		f.mu.Unlock()
		if f.v1Only {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		ttl := r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
		if ttl == "" {
			http.Error(w, "missing ttl", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		fmt.Fprint(w, imdsToken)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	tok := r.Header.Get("X-Aws-Ec2-Metadata-Token")
	f.mu.Lock()
	f.gets++
	if tok == "" {
		f.getsNoToken++
	}
	f.mu.Unlock()
	if !f.v1Only && tok != imdsToken {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	const creds = "/latest/meta-data/iam/security-credentials/"
	switch {
	case r.URL.Path == creds && f.role != "":
		fmt.Fprint(w, f.role)
	case r.URL.Path == creds+f.role && f.role != "":
		json.NewEncoder(w).Encode(map[string]string{
			"Code":            "Success",
			"LastUpdated":     time.Now().UTC().Format(time.RFC3339),
			"Type":            "AWS-HMAC",
			"AccessKeyId":     f.akid,
			"SecretAccessKey": f.secret,
			"Token":           "",
			"Expiration":      time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
		})
	case r.URL.Path == "/latest/meta-data/placement/region" && f.hangRegion:
		<-r.Context().Done()
	case r.URL.Path == "/latest/meta-data/placement/region" && f.region != "":
		fmt.Fprint(w, f.region)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeIMDS) counts() (tokenPuts, gets, getsNoToken int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenPuts, f.gets, f.getsNoToken
}

// fakeSTS answers AssumeRole and AssumeRoleWithWebIdentity in the awsQuery
// XML protocol, or fails every call with errCode.
type fakeSTS struct {
	akid, secret, token string
	errCode             string

	mu       sync.Mutex
	actions  []string
	authz    []string
	webToken []string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := r.Form.Get("Action")
	f.mu.Lock()
	f.actions = append(f.actions, action)
	f.authz = append(f.authz, r.Header.Get("Authorization"))
	f.webToken = append(f.webToken, r.Form.Get("WebIdentityToken"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if f.errCode != "" {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>fake sts says no</Message></Error><RequestId>r1</RequestId></ErrorResponse>`, f.errCode)
		return
	}
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	fmt.Fprintf(w, `<%[1]sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><%[1]sResult><Credentials><AccessKeyId>%[2]s</AccessKeyId><SecretAccessKey>%[3]s</SecretAccessKey><SessionToken>%[4]s</SessionToken><Expiration>%[5]s</Expiration></Credentials></%[1]sResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></%[1]sResponse>`,
		action, f.akid, f.secret, f.token, exp)
}

func (f *fakeSTS) calls() (actions, authz, webToken []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.actions...), append([]string(nil), f.authz...), append([]string(nil), f.webToken...)
}

// lockedBuffer collects log output written from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
