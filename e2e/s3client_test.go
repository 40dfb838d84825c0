package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// s3client is a minimal SigV4 client, independent of bucketfs's own store,
// so the tests can check what the server holds (Last-Modified) and replace
// objects under a live mount without trusting the code under test.
type s3client struct {
	endpoint string // http://127.0.0.1:PORT, path-style
	creds    aws.Credentials
	region   string
	http     *http.Client
}

func newS3Client(endpoint, access, secret, region string) *s3client {
	return &s3client{
		endpoint: strings.TrimRight(endpoint, "/"),
		creds:    aws.Credentials{AccessKeyID: access, SecretAccessKey: secret},
		region:   region,
		http:     &http.Client{Timeout: 5 * time.Minute},
	}
}

// escapeKey encodes a key the way SigV4 canonicalizes S3 paths: every byte
// but the unreserved characters and "/" as %XX. url.PathEscape leaves
// characters such as "&" and "(" alone, and then the signatures differ.
func escapeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func (c *s3client) do(ctx context.Context, method, bucket, key string, body []byte) (*http.Response, error) {
	u := c.endpoint + "/" + bucket
	if key != "" {
		u += "/" + escapeKey(key)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return c.send(ctx, req, body)
}

// send signs req, whose body is body, sends it, and turns an answer other
// than 2xx into an error.
func (c *s3client) send(ctx context.Context, req *http.Request, body []byte) (*http.Response, error) {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	req.ContentLength = int64(len(body))
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(ctx, c.creds, req, hash, "s3", c.region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, msg)
	}
	return resp, nil
}

// lastModified returns the Last-Modified time the server reports for key.
func (c *s3client) lastModified(ctx context.Context, bucket, key string) (time.Time, int64, error) {
	resp, err := c.do(ctx, http.MethodHead, bucket, key, nil)
	if err != nil {
		return time.Time{}, 0, err
	}
	resp.Body.Close()
	t, err := http.ParseTime(resp.Header.Get("Last-Modified"))
	return t, resp.ContentLength, err
}

// put stores body under key, replacing what was there.
func (c *s3client) put(ctx context.Context, bucket, key string, body []byte) error {
	resp, err := c.do(ctx, http.MethodPut, bucket, key, body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
