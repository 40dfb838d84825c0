package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/storetest"
)

// The tests below need a real S3-compatible server (versitygw in CI):
//
//	BUCKETFS_TEST_S3_ENDPOINT=http://127.0.0.1:7070
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  credentials for it
//	BUCKETFS_REQUIRE_S3=1                      fail instead of skip without it

// testEnv returns the endpoint and credentials, skipping or failing the test
// when no server is configured or reachable.
func testEnv(t *testing.T) (endpoint, access, secret string) {
	t.Helper()
	endpoint = os.Getenv("BUCKETFS_TEST_S3_ENDPOINT")
	required := os.Getenv("BUCKETFS_REQUIRE_S3") == "1"
	if endpoint == "" {
		if required {
			t.Fatal("BUCKETFS_REQUIRE_S3=1 but BUCKETFS_TEST_S3_ENDPOINT is not set")
		}
		t.Skip("BUCKETFS_TEST_S3_ENDPOINT not set; set it (and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) to run against an S3 server such as versitygw")
	}
	access, secret = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if access == "" || secret == "" {
		t.Fatal("BUCKETFS_TEST_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not")
	}
	// Keep the host's AWS files out of the configuration.
	dir := t.TempDir()
	for _, v := range []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		f := filepath.Join(dir, v)
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(v, f)
	}
	t.Setenv("AWS_PROFILE", "")
	return endpoint, access, secret
}

func newTestStore(t *testing.T, endpoint, access, secret string) *Store {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(access, secret, "")),
		config.WithRegion("us-east-1"),
	)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return New(cfg, Options{Endpoint: endpoint, PathStyle: true})
}

// reachable fails the test if the server does not answer ListBuckets.
func reachable(t *testing.T, s *Store, endpoint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := s.ListBuckets(ctx); err != nil {
		t.Fatalf("S3 server at %s not usable: %v", endpoint, err)
	}
}

// newBucket creates an empty bucket with a unique name and removes it, with
// whatever the test put in it, when the test ends.
func newBucket(t *testing.T, s *Store) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "bfs-test-" + hex.EncodeToString(b[:])
	if err := s.CreateBucket(t.Context(), name); err != nil {
		t.Fatalf("CreateBucket(%s): %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: aws.String(name)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Logf("cleanup: list %s: %v", name, err)
				return
			}
			for _, o := range page.Contents {
				_ = s.Delete(ctx, name, aws.ToString(o.Key))
			}
		}
		if _, err := s.client.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
			t.Logf("cleanup: delete bucket %s: %v", name, err)
		}
	})
	return name
}

func TestConformance(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	s := newTestStore(t, endpoint, access, secret)
	reachable(t, s, endpoint)
	storetest.Run(t, func(t *testing.T) (store.ObjectStore, store.Writer, string) {
		return s, s, newBucket(t, s)
	})
}

func TestErrors(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	good := newTestStore(t, endpoint, access, secret)
	reachable(t, good, endpoint)
	bucket := newBucket(t, good)
	ctx := t.Context()
	if _, err := good.Put(ctx, bucket, "k", strings.NewReader("data"), 4); err != nil {
		t.Fatal(err)
	}
	badSecret := newTestStore(t, endpoint, access, secret+"x")
	badKey := newTestStore(t, endpoint, "AKNOSUCHKEY0000", secret)

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"wrong secret ListBuckets", func() error { _, err := badSecret.ListBuckets(ctx); return err }, store.ErrAuth},
		{"wrong secret List", func() error {
			_, err := badSecret.List(ctx, store.ListInput{Bucket: bucket})
			return err
		}, store.ErrAuth},
		// HEAD errors have no body; Stat must still tell ErrAuth apart.
		{"wrong secret Stat", func() error { _, err := badSecret.Stat(ctx, bucket, "k"); return err }, store.ErrAuth},
		{"wrong secret ReadAt", func() error {
			_, err := badSecret.ReadAt(ctx, bucket, "k", "", make([]byte, 2), 0)
			return err
		}, store.ErrAuth},
		{"unknown key id ListBuckets", func() error { _, err := badKey.ListBuckets(ctx); return err }, store.ErrAuth},
		// Not Stat: versitygw answers an unknown key id with 404
		// XAdminUserNotFound, which on a bodiless HEAD is a plain 404.
		{"unknown key id List", func() error {
			_, err := badKey.List(ctx, store.ListInput{Bucket: bucket})
			return err
		}, store.ErrAuth},
		{"unknown key id ReadAt", func() error {
			_, err := badKey.ReadAt(ctx, bucket, "k", "", make([]byte, 2), 0)
			return err
		}, store.ErrAuth},
		{"missing bucket List", func() error {
			_, err := good.List(ctx, store.ListInput{Bucket: "bfs-no-such-bucket-x1"})
			return err
		}, store.ErrNotFound},
		{"missing bucket Stat", func() error { _, err := good.Stat(ctx, "bfs-no-such-bucket-x1", "k"); return err }, store.ErrNotFound},
		{"missing bucket ReadAt", func() error {
			_, err := good.ReadAt(ctx, "bfs-no-such-bucket-x1", "k", "", make([]byte, 2), 0)
			return err
		}, store.ErrNotFound},
		{"missing key ReadAt pinned", func() error {
			_, err := good.ReadAt(ctx, bucket, "nope", "0123", make([]byte, 2), 0)
			return err
		}, store.ErrNotFound},
		{"wrong etag", func() error {
			_, err := good.ReadAt(ctx, bucket, "k", "0123456789abcdef0123456789abcdef", make([]byte, 2), 0)
			return err
		}, store.ErrChanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, secret) {
				t.Errorf("error message contains the secret key: %s", msg)
			}
			t.Logf("%v", err)
		})
	}
}

// TestCredentialFailure needs no server: the SDK fails before sending.
func TestCredentialFailure(t *testing.T) {
	cfg := aws.Config{
		Region:     "us-east-1",
		HTTPClient: awshttp.NewBuildableClient(),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no credentials configured")
		}),
	}
	s := New(cfg, Options{Endpoint: "http://127.0.0.1:9", PathStyle: true})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := s.Stat(ctx, "b", "k")
	if !errors.Is(err, store.ErrAuth) {
		t.Fatalf("Stat with failing credentials = %v, want ErrAuth", err)
	}
	canceled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := s.Stat(canceled, "b", "k"); errors.Is(err, store.ErrAuth) || !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with canceled context = %v, want context.Canceled", err)
	}
}

// failingReaderAt fails reads at or beyond failAt, as a broken source would.
type failingReaderAt struct{ failAt int64 }

var errSource = errors.New("source failed")

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.failAt {
		return 0, errSource
	}
	clear(p)
	return len(p), nil
}

// TestMultipartAbort checks a failed part aborts the whole upload, leaving
// neither an object nor an unfinished upload behind.
func TestMultipartAbort(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	s := newTestStore(t, endpoint, access, secret)
	reachable(t, s, endpoint)
	bucket := newBucket(t, s)
	ctx := t.Context()
	const size = 50 << 20
	_, err := s.Put(ctx, bucket, "broken", failingReaderAt{failAt: 40 << 20}, size)
	if err == nil {
		t.Fatal("Put from a failing source succeeded")
	}
	t.Logf("Put: %v", err)
	if _, err := s.Stat(ctx, bucket, "broken"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after failed Put = %v, want ErrNotFound", err)
	}
	ups, err := s.client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after a failed Put", len(ups.Uploads))
	}
}
