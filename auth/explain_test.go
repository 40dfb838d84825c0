package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

func TestExplainS3Codes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown key id", fmt.Errorf("s3 ListBuckets: %w (InvalidAccessKeyId)", store.ErrAuth),
			"the server does not know this access key id (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id"},
		{"wrong secret", fmt.Errorf("s3 Stat data/x.csv: %w (SignatureDoesNotMatch)", store.ErrAuth),
			"the secret access key does not match the access key id (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key"},
		{"expired token", fmt.Errorf("s3 ReadAt b/k: %w (ExpiredToken)", store.ErrAuth),
			"the session token has expired (ExpiredToken): get fresh credentials"},
		{"bad token", fmt.Errorf("s3 ListBuckets: %w (InvalidToken)", store.ErrAuth),
			"the session token is malformed or does not belong to this access key (InvalidToken)"},
		{"clock skew", fmt.Errorf("s3 List b: %w (RequestTimeTooSkewed)", store.ErrAuth),
			"this machine's clock is too far off"},
		{"list buckets denied", fmt.Errorf("s3 ListBuckets: %w (AccessDenied)", store.ErrAccessDenied),
			"the credentials may not list buckets (AccessDenied, needs s3:ListAllMyBuckets): grant it, or mount a single bucket with s3://BUCKET"},
		{"list objects denied", fmt.Errorf("s3 List mybucket/data/: %w (AccessDenied)", store.ErrAccessDenied),
			"the credentials lack permission for this request (AccessDenied, needs s3:ListBucket)"},
		{"get object denied", fmt.Errorf("s3 GetObject mybucket/a.csv: %w (AccessDenied)", store.ErrAccessDenied),
			"the credentials lack permission for this request (AccessDenied, needs s3:GetObject)"},
		{"stat denied", fmt.Errorf("s3 Stat mybucket/a.csv: %w (AccessDenied)", store.ErrAccessDenied),
			"the credentials lack permission for this request (AccessDenied, needs s3:GetObject)"},
		{"denied, unknown operation", fmt.Errorf("s3 Frobnicate: %w", store.ErrAccessDenied),
			"the credentials are not allowed to make this request (AccessDenied)"},
		{"auth, unknown code", fmt.Errorf("s3 ListBuckets: %w (WeirdCode)", store.ErrAuth),
			"the server rejected the credentials (s3 ListBuckets: credentials rejected (WeirdCode)): check AWS_ACCESS_KEY_ID"},
		{"unrelated error passes through on one line", errors.New("dial tcp 127.0.0.1:1:\nconnection refused"),
			"dial tcp 127.0.0.1:1: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Explain(tc.err)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("Explain =\n%q\nwant prefix\n%q", got, tc.want)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("more than one line: %q", got)
			}
		})
	}
	if Explain(nil) != "" {
		t.Error("Explain(nil) not empty")
	}
}

// TestNoSecretInMessages runs failing and succeeding loads with a known
// secret key and session token and checks neither appears in any error text,
// Explain line, Result field or log line.
func TestNoSecretInMessages(t *testing.T) {
	scenarios := []struct {
		name  string
		setup func(t *testing.T) Options
	}{
		{"unknown profile with env keys", func(t *testing.T) Options {
			setEnvKeys(t)
			t.Setenv("AWS_SESSION_TOKEN", testToken)
			return Options{Profile: "nope"}
		}},
		{"no credentials", func(t *testing.T) Options {
			useIMDS(t, http.NotFoundHandler())
			return Options{}
		}},
		{"assume role rejected", func(t *testing.T) Options {
			setShared(t, "[profile work]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n",
				"[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = "+testSecret+"\naws_session_token = "+testToken+"\n")
			t.Setenv("AWS_ENDPOINT_URL_STS", serve(t, &fakeSTS{errCode: "SignatureDoesNotMatch"}).URL)
			return Options{Profile: "work", Region: "us-east-1"}
		}},
		{"success from environment", func(t *testing.T) Options {
			setEnvKeys(t)
			t.Setenv("AWS_SESSION_TOKEN", testToken)
			return Options{}
		}},
		{"success from instance role", func(t *testing.T) Options {
			useIMDS(t, &fakeIMDS{role: "r", region: "eu-west-1", akid: "AKIDI", secret: testSecret})
			return Options{}
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			isolate(t)
			logs := &lockedBuffer{}
			o := sc.setup(t)
			o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			res, err := Load(context.Background(), o)
			texts := []string{logs.String(), res.Source, res.RegionSource, res.Endpoint}
			if err != nil {
				texts = append(texts, err.Error(), Explain(err))
			}
			for _, s := range texts {
				if strings.Contains(s, testSecret) || strings.Contains(s, testToken) {
					t.Errorf("secret in %q", s)
				}
			}
		})
	}

	// An S3 error that somehow quotes the secret is scrubbed too.
	t.Run("scrub", func(t *testing.T) {
		isolate(t)
		setEnvKeys(t)
		err := fmt.Errorf("s3 ListBuckets: %w (WeirdCode: signing with %s)", store.ErrAuth, testSecret)
		if got := Explain(err); strings.Contains(got, testSecret) || !strings.Contains(got, "[redacted]") {
			t.Errorf("Explain = %q", got)
		}
	})
}
