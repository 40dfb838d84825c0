// Package s3 implements store.ObjectStore and store.Writer on the AWS
// S3 API. It is the only bucketfs package that imports the S3 SDK; errors
// leave it converted to the sentinels of package store.
package s3

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketfs/bucketfs/store"
)

// Options configures a Store beyond what the aws.Config carries.
type Options struct {
	// Endpoint overrides the S3 endpoint URL (e.g. a local S3-compatible
	// server); "" uses the SDK's endpoint resolution for the region.
	Endpoint string
	// PathStyle addresses buckets as http://host/bucket instead of
	// http://bucket.host, which most S3-compatible servers need.
	PathStyle bool
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Store talks to an S3 service. It is safe for concurrent use.
//
// Against AWS (no Endpoint) buckets may live in different regions: Store
// finds each bucket's region on first use and keeps one client per region
// (see region.go); the aws.Config's region is the default for buckets not
// yet seen. With a custom Endpoint there is one region and one client.
type Store struct {
	client  *awss3.Client // the default region's client
	regions *regions
	log     *slog.Logger
}

var (
	_ store.ObjectStore = (*Store)(nil)
	_ store.Writer      = (*Store)(nil)
)

// New returns a Store using cfg, whose HTTP client, credentials and region
// the caller has set up.
func New(cfg aws.Config, opts Options) *Store {
	return newStore(cfg, opts, opts.Endpoint == "", opts.Logger)
}

// newStore is New with region discovery chosen by the caller; tests turn it
// on for a local fake of S3's redirects.
func newStore(cfg aws.Config, opts Options, discover bool, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Credentials != nil {
		// Tag credential-retrieval failures so they become store.ErrAuth.
		// One cache in front, so the clients of all regions share it
		// instead of each wrapping the provider in a cache of its own.
		cfg.Credentials = aws.NewCredentialsCache(taggingProvider{cfg.Credentials})
	}
	r := newRegions(cfg, discover, log, func(o *awss3.Options) {
		// Non-AWS servers send no checksums on GET; without this every
		// read logs a warning.
		o.DisableLogOutputChecksumValidationSkipped = true
		o.UsePathStyle = opts.PathStyle
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	return &Store{client: r.client(r.def), regions: r, log: log}
}

// ListBuckets lists the buckets the credentials may list, following
// continuation tokens when the server paginates.
func (s *Store) ListBuckets(ctx context.Context) ([]store.Bucket, error) {
	var out []store.Bucket
	in := &awss3.ListBucketsInput{}
	for {
		resp, err := s.client.ListBuckets(ctx, in)
		if err != nil {
			return nil, convert("ListBuckets", "", "", err)
		}
		for _, b := range resp.Buckets {
			out = append(out, store.Bucket{Name: aws.ToString(b.Name), Created: aws.ToTime(b.CreationDate)})
			// AWS names each bucket's region here, which saves the
			// redirect on first use.
			s.regions.learn(aws.ToString(b.Name), aws.ToString(b.BucketRegion))
		}
		next := aws.ToString(resp.ContinuationToken)
		// A server repeating the token would loop forever; stop instead.
		if next == "" || next == aws.ToString(in.ContinuationToken) {
			return out, nil
		}
		in.ContinuationToken = aws.String(next)
	}
}

// List returns one page of ListObjectsV2.
func (s *Store) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	// Keys are arbitrary bytes, XML 1.0 cannot carry most control
	// characters: ask for URL-encoded keys, which S3 sends with
	// EncodingType "url" in the response. Servers that ignore the request
	// (versitygw) send raw keys and no EncodingType, and are not decoded.
	req := &awss3.ListObjectsV2Input{Bucket: aws.String(in.Bucket), EncodingType: types.EncodingTypeUrl}
	if in.Prefix != "" {
		req.Prefix = aws.String(in.Prefix)
	}
	if in.Delimiter != "" {
		req.Delimiter = aws.String(in.Delimiter)
	}
	if in.Token != "" {
		req.ContinuationToken = aws.String(in.Token)
	}
	if in.MaxKeys > 0 {
		req.MaxKeys = aws.Int32(int32(min(in.MaxKeys, 1<<30)))
	}
	var resp *awss3.ListObjectsV2Output
	err := s.call(ctx, in.Bucket, func(c *awss3.Client) (err error) {
		resp, err = c.ListObjectsV2(ctx, req)
		return err
	})
	if err != nil {
		return store.ListPage{}, convert("List", in.Bucket, in.Prefix, err)
	}
	page := store.ListPage{}
	encoded := resp.EncodingType == types.EncodingTypeUrl
	for _, o := range resp.Contents {
		key, ok := s.listedKey(in, aws.ToString(o.Key), encoded)
		if !ok {
			continue
		}
		page.Objects = append(page.Objects, store.Object{
			Key:     key,
			Size:    aws.ToInt64(o.Size),
			ModTime: aws.ToTime(o.LastModified),
			ETag:    unquote(aws.ToString(o.ETag)),
		})
	}
	for _, p := range resp.CommonPrefixes {
		if prefix, ok := s.listedKey(in, aws.ToString(p.Prefix), encoded); ok {
			page.Prefixes = append(page.Prefixes, prefix)
		}
	}
	if aws.ToBool(resp.IsTruncated) {
		page.NextToken = aws.ToString(resp.NextContinuationToken)
	}
	return page, nil
}

// listedKey decodes a key or common prefix of a listing sent with
// EncodingType "url" (form encoding: "+" is a space, "%2B" a plus). A key
// that does not decode, or decodes outside the prefix asked for, is a
// server bug; it is left out rather than shown under a wrong name.
func (s *Store) listedKey(in store.ListInput, raw string, encoded bool) (string, bool) {
	if !encoded {
		return raw, true
	}
	key, err := url.QueryUnescape(raw)
	if err != nil || !strings.HasPrefix(key, in.Prefix) {
		s.log.Warn("listing: leaving out a key the server sent badly encoded", "bucket", in.Bucket, "prefix", in.Prefix, "key", raw, "err", err)
		return "", false
	}
	return key, true
}

// Stat returns the metadata of key via HeadObject.
func (s *Store) Stat(ctx context.Context, bucket, key string) (store.Object, error) {
	var resp *awss3.HeadObjectOutput
	err := s.call(ctx, bucket, func(c *awss3.Client) (err error) {
		resp, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err
	})
	if err != nil {
		return store.Object{}, s.headError(ctx, bucket, key, err)
	}
	return store.Object{
		Key:     key,
		Size:    aws.ToInt64(resp.ContentLength),
		ModTime: aws.ToTime(resp.LastModified),
		ETag:    unquote(aws.ToString(resp.ETag)),
	}, nil
}

// headError converts a HeadObject error. A HEAD response has no body, so a
// rejected signature and a denied read both arrive as a bare 403 (and an
// expired token as a bare 400). Only then, to tell ErrAuth from
// ErrAccessDenied, it asks for one byte with GET, whose error has a body.
func (s *Store) headError(ctx context.Context, bucket, key string, err error) error {
	if !isCode(err, "Forbidden", "BadRequest") {
		return convert("Stat", bucket, key, err)
	}
	resp, gerr := s.regions.client(s.regions.forBucket(bucket)).GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String("bytes=0-0"),
	})
	if gerr == nil {
		resp.Body.Close()
		return convert("Stat", bucket, key, err)
	}
	if code, _ := errCode(gerr); code == "" || code == "InvalidRange" {
		return convert("Stat", bucket, key, err)
	}
	return convert("Stat", bucket, key, gerr)
}

// ReadAt is store.ReadAt over this store: one ranged GET into p.
func (s *Store) ReadAt(ctx context.Context, bucket, key, etag string, p []byte, off int64) (int, error) {
	return store.ReadAt(ctx, s, bucket, key, etag, p, off)
}

// rangeStart parses the first byte position of "bytes START-END/SIZE".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(start, 10, 64)
	return v, err == nil
}

// CreateBucket creates bucket; a bucket the caller already owns is success.
func (s *Store) CreateBucket(ctx context.Context, bucket string) error {
	_, err := s.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil && !isCode(err, "BucketAlreadyOwnedByYou") {
		return convert("CreateBucket", bucket, "", err)
	}
	return nil
}

// Delete removes key; deleting a missing key succeeds as on S3.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	err := s.call(ctx, bucket, func(c *awss3.Client) error {
		_, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err
	})
	return convert("Delete", bucket, key, err)
}

func unquote(etag string) string {
	return strings.Trim(etag, `"`)
}
