package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/bucketfs/bucketfs/store"
)

// Identity is what STS GetCallerIdentity says about the credentials.
type Identity struct {
	Account string
	ARN     string
	UserID  string
}

// ErrNoSTS means the endpoint does not answer STS, as S3-compatible servers
// usually do not; the credentials may still be fine for S3.
var ErrNoSTS = errors.New("STS not available at this endpoint")

// Variables so tests can shorten them.
var (
	// stsTimeout bounds GetCallerIdentity against AWS.
	stsTimeout = 15 * time.Second
	// stsProbeTimeout bounds the one attempt at an S3-compatible endpoint,
	// which most likely does not speak STS at all.
	stsProbeTimeout = 5 * time.Second
)

// stsAuthCodes are STS answers that condemn the credentials themselves.
var stsAuthCodes = map[string]bool{
	"InvalidClientTokenId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true,
	"InvalidToken": true, "IncompleteSignature": true, "InvalidAccessKeyId": true,
}

// CallerIdentity asks STS who the credentials of r belong to. With a custom
// S3 endpoint (and no AWS_ENDPOINT_URL_STS) it asks that same endpoint once,
// briefly, and any failure there is ErrNoSTS. Against AWS, a rejection of
// the credentials wraps store.ErrAuth with the STS code, so Explain gives
// its usual line.
func CallerIdentity(ctx context.Context, r Result) (Identity, error) {
	probe := r.Endpoint != "" && os.Getenv("AWS_ENDPOINT_URL_STS") == ""
	timeout := stsTimeout
	if probe {
		timeout = stsProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := sts.NewFromConfig(r.Config, func(o *sts.Options) {
		if probe {
			o.BaseEndpoint = aws.String(r.Endpoint)
			o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), 1)
		}
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err == nil && out.Arn == nil {
		err = errors.New("the answer names no ARN")
	}
	if err != nil {
		code := ""
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			code = apiErr.ErrorCode()
		}
		switch {
		case probe && code != "":
			return Identity{}, fmt.Errorf("%w (%s)", ErrNoSTS, code)
		case probe:
			return Identity{}, fmt.Errorf("%w (%s)", ErrNoSTS, scrub(innermost(err), envSecrets()...))
		case stsAuthCodes[code]:
			return Identity{}, fmt.Errorf("sts GetCallerIdentity: %w (%s)", store.ErrAuth, code)
		}
		return Identity{}, fmt.Errorf("sts GetCallerIdentity: %s", scrub(oneLine(err.Error()), envSecrets()...))
	}
	return Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}, nil
}
