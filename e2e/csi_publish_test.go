package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// webIdentitySTS answers AssumeRoleWithWebIdentity with one versitygw
// user's keys (and an empty session token: versitygw refuses tokens it did
// not issue), recording the role and token it was given.
type webIdentitySTS struct {
	akid, secret string
	mu           sync.Mutex
	calls        []url.Values
}

func (f *webIdentitySTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, r.Form)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>only AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>`)
		return
	}
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken></SessionToken><Expiration>%s</Expiration></Credentials><SubjectFromWebIdentityToken>pod</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
		f.akid, f.secret, exp)
}

// seen returns the role and token of every AssumeRoleWithWebIdentity.
func (f *webIdentitySTS) seen() (roles, tokens []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		roles = append(roles, c.Get("RoleArn"))
		tokens = append(tokens, c.Get("WebIdentityToken"))
	}
	return roles, tokens
}

// fakeKubeAPI serves service accounts (name -> role annotation, "" for
// none) the way the Kubernetes API server does, over TLS, to a bearer token.
func fakeKubeAPI(t *testing.T, roles map[string]string) (env []string, saDir string) {
	t.Helper()
	const token = "driver-token"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		// /api/v1/namespaces/NS/serviceaccounts/NAME
		p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(p) != 6 || p[2] != "namespaces" || p[4] != "serviceaccounts" {
			http.NotFound(w, r)
			return
		}
		role, ok := roles[p[3]+"/"+p[5]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		sa := map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": p[5], "namespace": p[3]}}
		if role != "" {
			sa["metadata"].(map[string]any)["annotations"] = map[string]string{"eks.amazonaws.com/role-arn": role}
		}
		json.NewEncoder(w).Encode(sa)
	}))
	t.Cleanup(srv.Close)
	saDir = t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(saDir, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(saDir, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	return []string{"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + u.Port()}, saDir
}

// podTokens is the volume context entry of CSIDriver tokenRequests.
func podTokens(token string) string {
	b, _ := json.Marshal(map[string]any{"sts.amazonaws.com": map[string]string{
		"token": token, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	return string(b)
}

// TestCSICredentials publishes volumes with each of the three identities,
// on a versitygw with one user per source, and checks from the server's
// access log that each mount signed with the keys of its own source:
//
//   - node: the driver's instance role, from a fake instance metadata
//     service (user NODE);
//   - secret: the access keys of the PV's nodePublishSecretRef (user SECRET);
//   - pod: the pod's service-account token, traded at a fake STS for the
//     keys of user POD, with the role named in the volume or in the service
//     account's annotation (read from a fake API server).
//
// The secret's value appears in no log, no command line and no error.
func TestCSICredentials(t *testing.T) {
	s := need(t)
	needRoot(t)
	g := startIAMGateway(t)
	users := map[string][2]string{
		"node":   {"AKCSINODE", "SKcsiNodeSecret0123456789"},
		"secret": {"AKCSISECRET", "SKcsiSecretSecret0123456789"},
		"pod":    {"AKCSIPOD", "SKcsiPodSecret0123456789"},
	}
	for _, u := range users {
		g.adminCmd(t, "create-user", "--access", u[0], "--secret", u[1], "--role", "admin")
	}
	root := newS3Client(g.endpoint, g.root, g.rootSecret, "us-east-1")
	const bucket = "csicreds"
	if _, err := root.do(t.Context(), http.MethodPut, bucket, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := root.put(t.Context(), bucket, "hello.txt", []byte("hello from S3\n")); err != nil {
		t.Fatal(err)
	}

	imds := &roleIMDS{}
	imds.set(users["node"][0], users["node"][1], time.Now().Add(6*time.Hour), false)
	imdsSrv := httptest.NewServer(imds)
	t.Cleanup(imdsSrv.Close)
	sts := &webIdentitySTS{akid: users["pod"][0], secret: users["pod"][1]}
	stsSrv := httptest.NewServer(sts)
	t.Cleanup(stsSrv.Close)
	kubeEnv, saDir := fakeKubeAPI(t, map[string]string{
		"rstudio/session-sa": "arn:aws:iam::123456789012:role/from-annotation",
		"rstudio/plain-sa":   "",
	})

	var env []string
	for _, kv := range s.csiEnv(kubeEnv...) {
		if !strings.HasPrefix(kv, "AWS_EC2_METADATA_DISABLED=") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsSrv.URL, "AWS_ENDPOINT_URL_STS="+stsSrv.URL)
	stateDir := t.TempDir()
	d := s.startCSI(t, stateDir, env, "--serviceaccount-dir", saDir)
	targets := s.csiTargets(t)

	attrs := func(more map[string]string) map[string]string {
		return with(map[string]string{"source": "s3://" + bucket, "options": "endpoint=" + g.endpoint + ",path_style,region=us-east-1"}, more)
	}
	pod := func(sa string) map[string]string {
		return map[string]string{"csi.storage.k8s.io/pod.name": "session-1", "csi.storage.k8s.io/pod.namespace": "rstudio",
			"csi.storage.k8s.io/serviceAccount.name": sa}
	}
	for _, tc := range []struct {
		name     string
		user     string
		vol      csiVolume
		wantRole string
	}{
		{name: "node", user: "node", vol: csiVolume{id: "vol-node", attrs: attrs(nil)}},
		{name: "secret", user: "secret", vol: csiVolume{id: "vol-secret", attrs: attrs(nil),
			secrets: map[string]string{"access_key_id": users["secret"][0], "secret_access_key": users["secret"][1]}}},
		{name: "pod-role-attribute", user: "pod", wantRole: "arn:aws:iam::123456789012:role/from-volume",
			vol: csiVolume{id: "vol-pod", attrs: attrs(with(pod("plain-sa"), map[string]string{"identity": "pod",
				"role_arn": "arn:aws:iam::123456789012:role/from-volume", "csi.storage.k8s.io/serviceAccount.tokens": podTokens("jwt-of-session-1")}))}},
		{name: "pod-role-annotation", user: "pod", wantRole: "arn:aws:iam::123456789012:role/from-annotation",
			vol: csiVolume{id: "vol-pod-sa", attrs: attrs(with(pod("session-sa"), map[string]string{"identity": "pod",
				"csi.storage.k8s.io/serviceAccount.tokens": podTokens("jwt-of-session-1")}))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.requesters(t)
			target := filepath.Join(targets, tc.name, "mount")
			d.publish(t, s, tc.vol, target)
			data, err := os.ReadFile(filepath.Join(target, "hello.txt"))
			if err != nil || string(data) != "hello from S3\n" {
				t.Fatalf("reading through the volume: %q, %v", data, err)
			}
			if tc.user == "secret" && cmdlinesContain(users["secret"][1]) {
				t.Error("a process's command line holds the secret key")
			}
			after := g.requesters(t)
			for name, u := range users {
				n := after[u[0]] - before[u[0]]
				if name == tc.user && n == 0 {
					t.Errorf("no request signed by user %s", name)
				}
				if name != tc.user && n != 0 {
					t.Errorf("%d requests signed by user %s, want none: identity %s must use only its own source", n, name, tc.name)
				}
			}
			if tc.wantRole != "" {
				roles, tokens := sts.seen()
				if len(roles) == 0 || roles[len(roles)-1] != tc.wantRole || tokens[len(tokens)-1] != "jwt-of-session-1" {
					t.Errorf("STS saw roles %q and tokens %q, want role %s with the pod's token", roles, tokens, tc.wantRole)
				}
				// The kubelet republishes with a fresh token
				// (requiresRepublish): the mount's token file follows.
				v := tc.vol
				v.attrs = with(v.attrs, map[string]string{"csi.storage.k8s.io/serviceAccount.tokens": podTokens("jwt-renewed")})
				d.publish(t, s, v, target)
				if tok := readTokenFile(t, stateDir, target); tok != "jwt-renewed" {
					t.Errorf("after republishing, the mount's token file holds %q, want the new token", tok)
				}
			}
			if err := d.unpublish(t, tc.vol.id, target); err != nil {
				t.Fatalf("NodeUnpublishVolume: %v", err)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("the target %s is still there after NodeUnpublishVolume (%v)", target, err)
			}
		})
	}

	t.Run("wrong-secret", func(t *testing.T) {
		const bad = "SKthisIsNotTheSecret0123456789"
		v := csiVolume{id: "vol-bad-secret", attrs: attrs(nil), secrets: map[string]string{"access_key_id": users["secret"][0], "secret_access_key": bad}}
		target := filepath.Join(targets, "bad", "mount")
		_, err := d.node.NodePublishVolume(t.Context(), v.publishReq(target))
		if status.Code(err) == codes.OK || isMounted(t, target) {
			t.Fatalf("publishing with a wrong secret key: %v, mounted %v; want an error and no mount", err, isMounted(t, target))
		}
		t.Logf("wrong secret: %v", err)
		if strings.Contains(err.Error(), bad) {
			t.Error("the error names the secret key")
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("the failed publish left the target %s", target)
		}
		if _, err := os.Stat(filepath.Join(stateDir, "volumes")); err == nil {
			keys, _ := filepath.Glob(filepath.Join(stateDir, "volumes", "*.keys"))
			if len(keys) != 0 {
				t.Errorf("a failed publish left access keys in the state directory: %v", keys)
			}
		}
	})

	t.Run("annotation-missing", func(t *testing.T) {
		v := csiVolume{id: "vol-no-role", attrs: attrs(with(pod("plain-sa"), map[string]string{"identity": "pod",
			"csi.storage.k8s.io/serviceAccount.tokens": podTokens("jwt")}))}
		_, err := d.node.NodePublishVolume(t.Context(), v.publishReq(filepath.Join(targets, "norole", "mount")))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kubectl annotate serviceaccount -n rstudio plain-sa") {
			t.Errorf("pod identity without a role: %v, want InvalidArgument telling how to annotate the service account", err)
		}
	})

	// No secret anywhere: driver log, mount logs, daemons' command lines.
	secret := users["secret"][1]
	logs, _ := filepath.Glob(filepath.Join(stateDir, "logs", "*.log"))
	for _, p := range append(logs, d.log) {
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte("SKthisIsNotTheSecret")) {
			t.Errorf("%s contains a secret key", p)
		}
	}
}

// readTokenFile reads the pod token the driver keeps for target.
func readTokenFile(t *testing.T, stateDir, target string) string {
	t.Helper()
	toks, _ := filepath.Glob(filepath.Join(stateDir, "volumes", "*.token"))
	for _, p := range toks {
		rec, err := os.ReadFile(strings.TrimSuffix(p, ".token") + ".json")
		if err != nil || !bytes.Contains(rec, []byte(`"target": "`+target+`"`)) {
			continue
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("token file %s has mode %v, want 0600", p, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(p)
		return string(data)
	}
	t.Fatalf("no token file for %s in %s", target, stateDir)
	return ""
}

// cmdlinesContain reports whether any process's command line contains s.
func cmdlinesContain(s string) bool {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}
