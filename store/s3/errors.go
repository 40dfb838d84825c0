package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/bucketfs/bucketfs/store"
)

// Server error codes grouped by the sentinel they become. S3 and
// S3-compatible servers send these in the XML error body; HEAD responses
// have no body, so there the SDK derives the code from the status text
// ("NotFound", "Forbidden", "PreconditionFailed", ...).
var (
	notFoundCodes = map[string]bool{"NoSuchKey": true, "NotFound": true, "NoSuchBucket": true}
	authCodes     = map[string]bool{
		"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true,
		"InvalidToken": true, "TokenRefreshRequired": true,
		// versitygw's answer (with 404) to an access key id it does not know.
		"XAdminUserNotFound": true,
	}
	deniedCodes   = map[string]bool{"AccessDenied": true, "AllAccessDisabled": true}
	changedCodes  = map[string]bool{"PreconditionFailed": true}
	throttleCodes = map[string]bool{
		"SlowDown": true, "Throttling": true, "ThrottlingException": true,
		"RequestThrottled": true, "RequestLimitExceeded": true, "TooManyRequests": true,
		"TooManyRequestsException": true,
	}
)

// credentialError marks a failure to obtain credentials before a request was
// sent, so it is reported as store.ErrAuth and not as a network error.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return "retrieving credentials: " + e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// taggingProvider wraps the caller's credentials provider and tags its
// failures. It forwards the SDK's optional provider interfaces so wrapping
// changes nothing else (anonymous-credential detection, credential source
// metrics).
type taggingProvider struct{ p aws.CredentialsProvider }

func (t taggingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil {
		return c, &credentialError{err}
	}
	return c, nil
}

func (t taggingProvider) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	return aws.IsCredentialsProvider(t.p, target)
}

func (t taggingProvider) ProviderSources() []aws.CredentialSource {
	if s, ok := t.p.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

// errCode returns the server's error code and HTTP status, if the error
// carries them.
func errCode(err error) (code string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}

// sentinelFor maps a server error code and status to a store sentinel, or
// nil when none applies.
func sentinelFor(code string, status int) error {
	switch {
	case authCodes[code]:
		return store.ErrAuth
	case notFoundCodes[code], status == http.StatusNotFound:
		return store.ErrNotFound
	case deniedCodes[code], status == http.StatusForbidden:
		return store.ErrAccessDenied
	case changedCodes[code], status == http.StatusPreconditionFailed:
		return store.ErrChanged
	case throttleCodes[code], status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
		return store.ErrThrottled
	}
	return nil
}

// convert turns an SDK error into one wrapping a store sentinel where one
// applies. Messages carry the operation, bucket, key and server code but
// never request headers, so no secret can leak into them.
func convert(op, bucket, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3 %s %s/%s: %w", op, bucket, key, err)
	}
	var credErr *credentialError
	if errors.As(err, &credErr) {
		return fmt.Errorf("s3 %s %s/%s: %w (%v)", op, bucket, key, store.ErrAuth, credErr.err)
	}
	code, status := errCode(err)
	if region, wrong := regionHint(err); wrong {
		// Only reached when the region could not be switched to (a
		// custom endpoint, or no region named): say so instead of "301".
		fix := "pass the bucket's region with --region"
		if region != "" {
			fix = "pass --region " + region
		}
		return fmt.Errorf("s3 %s %s/%s: the bucket is in another region than requests are signed for (%s): %s%.0w",
			op, bucket, key, code, fix, store.ErrWrongRegion)
	}
	if s := sentinelFor(code, status); s != nil {
		detail := code
		if status != 0 {
			detail = fmt.Sprintf("%s, HTTP %d", code, status)
		}
		return &statusError{msg: fmt.Sprintf("s3 %s %s/%s: %v (%s)", op, bucket, key, s, detail), sentinel: s, status: status}
	}
	return fmt.Errorf("s3 %s %s/%s: %w", op, bucket, key, err)
}

// statusError is a converted error: it wraps only the store sentinel (so
// nothing of the SDK's error leaks through errors.Is or errors.As above the
// store) but still tells the HTTP status, for log lines and metrics.
type statusError struct {
	msg      string
	sentinel error
	status   int
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.sentinel }

// HTTPStatusCode is the status of the server's answer, 0 when none came.
func (e *statusError) HTTPStatusCode() int { return e.status }

// isCode reports whether err carries one of the given server error codes.
func isCode(err error, codes ...string) bool {
	code, _ := errCode(err)
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}
