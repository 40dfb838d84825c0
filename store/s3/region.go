package s3

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// bucketRegionHeader is how S3 names a bucket's region: on HeadBucket, and
// on the 301 PermanentRedirect (or 400 AuthorizationHeaderMalformed) it
// answers to a request sent to or signed for the wrong region.
const bucketRegionHeader = "X-Amz-Bucket-Region"

// regions hands out one awss3.Client per region and remembers which region
// each bucket lives in. All clients share the aws.Config's credentials
// cache and HTTP client; they differ only in the region they resolve the
// endpoint for and sign with. Without discovery (a custom endpoint: an
// S3-compatible server has one region) every bucket uses the default client.
type regions struct {
	cfg      aws.Config
	optFns   []func(*awss3.Options)
	discover bool
	def      string
	log      *slog.Logger

	mu      sync.Mutex
	clients map[string]*awss3.Client // by region
	buckets map[string]string        // bucket name -> region, once known
}

func newRegions(cfg aws.Config, discover bool, log *slog.Logger, optFns ...func(*awss3.Options)) *regions {
	r := &regions{
		cfg: cfg, optFns: optFns, discover: discover, def: cfg.Region, log: log,
		clients: map[string]*awss3.Client{}, buckets: map[string]string{},
	}
	r.clients[r.def] = awss3.NewFromConfig(cfg, optFns...)
	return r
}

// client returns the client for region, creating it on first use.
func (r *regions) client(region string) *awss3.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[region]; ok {
		return c
	}
	opts := append(append([]func(*awss3.Options){}, r.optFns...), func(o *awss3.Options) { o.Region = region })
	c := awss3.NewFromConfig(r.cfg, opts...)
	r.clients[region] = c
	return c
}

// forBucket returns the region bucket is known to live in, else the default.
func (r *regions) forBucket(bucket string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reg, ok := r.buckets[bucket]; ok {
		return reg
	}
	return r.def
}

func (r *regions) learn(bucket, region string) {
	if !r.discover || bucket == "" || region == "" {
		return
	}
	r.mu.Lock()
	old, known := r.buckets[bucket]
	r.buckets[bucket] = region
	r.mu.Unlock()
	if !known || old != region {
		r.log.Debug("bucket region", "bucket", bucket, "region", region)
	}
}

// call runs fn with the client for bucket's region. When the server answers
// that the bucket lives elsewhere, call learns the region (from the answer's
// header, else from HeadBucket) and runs fn once more with that region's
// client, so the redirect never reaches the caller. fn must be safe to run
// twice (build request bodies inside it).
func (s *Store) call(ctx context.Context, bucket string, fn func(c *awss3.Client) error) error {
	region := s.regions.forBucket(bucket)
	err := fn(s.regions.client(region))
	if err == nil || !s.regions.discover || bucket == "" {
		return err
	}
	hint, wrongRegion := regionHint(err)
	if hint == "" && wrongRegion {
		hint = s.headBucketRegion(ctx, bucket)
	}
	if hint == "" || hint == region {
		return err
	}
	s.regions.learn(bucket, hint)
	return fn(s.regions.client(hint))
}

// regionHint returns the region an error response names in its
// x-amz-bucket-region header, and whether the error says the request went
// to the wrong region.
func regionHint(err error) (region string, wrongRegion bool) {
	code, status := errCode(err)
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		region = respErr.Response.Header.Get(bucketRegionHeader)
	}
	wrongRegion = status == http.StatusMovedPermanently || code == "PermanentRedirect" ||
		code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException"
	return region, wrongRegion
}

// headBucketRegion asks HeadBucket (with the default client) where bucket
// lives. S3 names the region in the header even when it refuses the request
// (301 or 403), so the error's header counts too. "" when it says nothing.
func (s *Store) headBucketRegion(ctx context.Context, bucket string) string {
	out, err := s.regions.client(s.regions.def).HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return aws.ToString(out.BucketRegion)
	}
	region, _ := regionHint(err)
	return region
}
