package s3

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store"
)

// fakeRegionalS3 answers like S3 does for buckets in several regions: a
// request signed for the wrong region gets 301 PermanentRedirect with the
// bucket's region in x-amz-bucket-region (unless noHeader names the bucket,
// then only HeadBucket says it). Every bucket holds one key "k" = "hello".
type fakeRegionalS3 struct {
	home     map[string]string // bucket -> region
	noHeader map[string]bool
	listed   map[string]bool // buckets ListBuckets returns (with their region)

	mu   sync.Mutex
	reqs []fakeReq
}

type fakeReq struct {
	method, path, region string
	status               int
}

var scopeRE = regexp.MustCompile(`Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request`)

func (f *fakeRegionalS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := scopeRE.FindStringSubmatch(r.Header.Get("Authorization"))
	region := ""
	if m != nil {
		region = m[1]
	}
	status := f.serve(w, r, region)
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeReq{r.Method, r.URL.Path, region, status})
	f.mu.Unlock()
}

func (f *fakeRegionalS3) serve(w http.ResponseWriter, r *http.Request, region string) int {
	if region == "" {
		http.Error(w, "unsigned", http.StatusForbidden)
		return http.StatusForbidden
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket == "" {
		var b strings.Builder
		for name := range f.listed {
			fmt.Fprintf(&b, "<Bucket><Name>%s</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate><BucketRegion>%s</BucketRegion></Bucket>", name, f.home[name])
		}
		fmt.Fprintf(w, `<ListAllMyBucketsResult><Buckets>%s</Buckets></ListAllMyBucketsResult>`, b.String())
		return http.StatusOK
	}
	home, ok := f.home[bucket]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>`)
		return http.StatusNotFound
	}
	headBucket := r.Method == http.MethodHead && key == ""
	if headBucket || !f.noHeader[bucket] {
		w.Header().Set("X-Amz-Bucket-Region", home)
	}
	if region != home {
		w.WriteHeader(http.StatusMovedPermanently)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Bucket>%s</Bucket></Error>`, bucket)
		}
		return http.StatusMovedPermanently
	}
	const etag = `"5d41402abc4b2a76b9719d911017c592"`
	switch {
	case headBucket:
	case r.Method == http.MethodGet && key == "":
		fmt.Fprintf(w, `<ListBucketResult><Name>%s</Name><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>5</Size><ETag>%s</ETag><LastModified>2024-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>`, bucket, etag)
	case r.Method == http.MethodHead && key == "k":
		w.Header().Set("Content-Length", "5")
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
	case r.Method == http.MethodGet && key == "k":
		w.Header().Set("Content-Range", "bytes 0-4/5")
		w.Header().Set("Content-Length", "5")
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusPartialContent)
		fmt.Fprint(w, "hello")
		return http.StatusPartialContent
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `<Error><Code>NoSuchKey</Code><Message>no</Message></Error>`)
		return http.StatusNotFound
	}
	return http.StatusOK
}

// requests returns the requests made to bucket.
func (f *fakeRegionalS3) requests(bucket string) []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeReq
	for _, r := range f.reqs {
		if r.path == "/"+bucket || strings.HasPrefix(r.path, "/"+bucket+"/") {
			out = append(out, r)
		}
	}
	return out
}

func newRegionalStore(t *testing.T, f *fakeRegionalS3, discover bool) *Store {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:      "us-east-1",
		HTTPClient:  awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDREGIONTEST", "regionTestSecret0123456789", ""),
	}
	return newStore(cfg, Options{Endpoint: srv.URL, PathStyle: true}, discover, nil)
}

// TestRegionRouting: every operation on a bucket in another region succeeds,
// the redirect costs one request on first use, and every later request goes
// out signed for the bucket's own region.
func TestRegionRouting(t *testing.T) {
	f := &fakeRegionalS3{
		home:     map[string]string{"home": "us-east-1", "eu": "eu-west-1", "ap": "ap-southeast-2", "listed": "eu-central-1"},
		noHeader: map[string]bool{"ap": true},
		listed:   map[string]bool{"listed": true},
	}
	s := newRegionalStore(t, f, true)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := s.ListBuckets(ctx); err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}

	for _, tc := range []struct {
		bucket     string
		region     string
		redirects  int // 301s expected on first use
		headBucket bool
	}{
		{"home", "us-east-1", 0, false},
		{"eu", "eu-west-1", 1, false},
		{"ap", "ap-southeast-2", 2, true}, // the GET's 301 without header, then HeadBucket's
		{"listed", "eu-central-1", 0, false},
	} {
		t.Run(tc.bucket, func(t *testing.T) {
			page, err := s.List(ctx, store.ListInput{Bucket: tc.bucket, Delimiter: "/"})
			if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != "k" {
				t.Fatalf("List = %+v, %v", page, err)
			}
			obj, err := s.Stat(ctx, tc.bucket, "k")
			if err != nil || obj.Size != 5 {
				t.Fatalf("Stat = %+v, %v", obj, err)
			}
			buf := make([]byte, 5)
			if n, err := s.ReadAt(ctx, tc.bucket, "k", obj.ETag, buf, 0); err != nil || string(buf) != "hello" {
				t.Fatalf("ReadAt = %d %q, %v", n, buf, err)
			}
			reqs := f.requests(tc.bucket)
			redirects, heads := 0, 0
			for i, r := range reqs {
				if r.method == http.MethodHead && r.path == "/"+tc.bucket {
					heads++
				}
				if r.status == http.StatusMovedPermanently {
					redirects++
					continue
				}
				if r.region != tc.region {
					t.Errorf("request %d %s %s signed for %s, want %s", i, r.method, r.path, r.region, tc.region)
				}
			}
			if redirects != tc.redirects {
				t.Errorf("%d redirects, want %d: %+v", redirects, tc.redirects, reqs)
			}
			if (heads > 0) != tc.headBucket {
				t.Errorf("%d HeadBucket requests, want any: %v", heads, tc.headBucket)
			}
			// Only the first use may be redirected.
			for _, r := range reqs[min(len(reqs), tc.redirects+1):] {
				if r.status == http.StatusMovedPermanently {
					t.Errorf("redirect after the region was known: %+v", r)
				}
			}
		})
	}

	// Readers racing on a bucket nobody used yet all succeed.
	f.home["eu2"] = "eu-west-2"
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 5)
			if n, err := s.ReadAt(ctx, "eu2", "k", "", buf, 0); err != nil || string(buf) != "hello" {
				errs <- fmt.Errorf("read %d bytes %q: %v", n, buf[:n], err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent ReadAt: %v", err)
	}
}

// TestRegionNoDiscovery: with a custom endpoint there is one region, and a
// redirect becomes a message naming the region, not "301".
func TestRegionNoDiscovery(t *testing.T) {
	f := &fakeRegionalS3{home: map[string]string{"eu": "eu-west-1"}}
	s := newRegionalStore(t, f, false)
	_, err := s.List(t.Context(), store.ListInput{Bucket: "eu"})
	if err == nil {
		t.Fatal("List succeeded without region discovery")
	}
	msg := err.Error()
	if !strings.Contains(msg, "--region eu-west-1") || strings.Contains(msg, "301") {
		t.Errorf("error %q should name --region eu-west-1 and not the status", msg)
	}
	for _, r := range f.requests("eu") {
		if r.region != "us-east-1" {
			t.Errorf("request signed for %s without discovery", r.region)
		}
	}
}
