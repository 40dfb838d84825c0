package csi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultServiceAccountDir is where a pod finds its own token and the
// cluster's CA for the Kubernetes API.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// KubeAPI reads service accounts from the Kubernetes API server with the
// driver's own service-account token (RBAC: get serviceaccounts,
// deploy/rbac.yaml).
type KubeAPI struct {
	Base      string // https://HOST:PORT
	TokenFile string
	Client    *http.Client
}

// InClusterAPI is the API server a pod reaches: KUBERNETES_SERVICE_HOST and
// _PORT, with the token and CA in saDir.
func InClusterAPI(saDir string) (*KubeAPI, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set): set the volume attribute role_arn")
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("no cluster CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", saDir)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &KubeAPI{
		Base:      "https://" + net.JoinHostPort(host, port),
		TokenFile: saDir + "/token",
		Client:    &http.Client{Transport: tr, Timeout: 15 * time.Second},
	}, nil
}

// Role returns the eks.amazonaws.com/role-arn annotation of a service
// account ("" if it has none).
func (k *KubeAPI) Role(ctx context.Context, namespace, name string) (string, error) {
	tok, err := os.ReadFile(k.TokenFile)
	if err != nil {
		return "", fmt.Errorf("the driver's own token: %v", err)
	}
	u := k.Base + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/serviceaccounts/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Accept", "application/json")
	resp, err := k.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return "", errors.New("the API server says 403 Forbidden: the driver's ClusterRole must allow get on serviceaccounts (deploy/rbac.yaml)")
	default:
		return "", fmt.Errorf("the API server says %s", resp.Status)
	}
	var sa struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &sa); err != nil {
		return "", fmt.Errorf("the API server's answer is not a ServiceAccount: %v", err)
	}
	return sa.Metadata.Annotations[roleAnnotation], nil
}

// inClusterRoles asks the API server of the cluster the driver runs in.
func inClusterRoles(saDir string) RoleLookup {
	return func(ctx context.Context, namespace, name string) (string, error) {
		k, err := InClusterAPI(saDir)
		if err != nil {
			return "", err
		}
		return k.Role(ctx, namespace, name)
	}
}
