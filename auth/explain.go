package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"

	"github.com/bucketfs/bucketfs/store"
)

// loadError is what Load returns for credential and profile problems. line is
// the one-line explanation (what failed and what to do); err is the SDK error
// behind it, kept for errors.Is/As and shown in Error() for the debug log.
type loadError struct {
	line string
	err  error
}

func (e *loadError) Error() string {
	if e.err == nil {
		return e.line
	}
	return e.line + " [" + scrub(oneLine(e.err.Error()), envSecrets()...) + "]"
}

func (e *loadError) Unwrap() []error {
	if e.err == nil {
		return []error{store.ErrAuth}
	}
	return []error{store.ErrAuth, e.err}
}

// Explain turns any error from Load, or from an S3 request that failed for
// credential reasons, into one line naming the cause and the fix. It never
// contains a secret key or session token. Errors it does not recognise come
// back as their own text on one line.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var le *loadError
	if errors.As(err, &le) {
		return le.line
	}
	text := scrub(oneLine(err.Error()), envSecrets()...)
	words := tokens(text)
	if line := explainCode(words); line != "" {
		return line
	}
	switch {
	case errors.Is(err, store.ErrAccessDenied):
		return accessDeniedLine(words)
	case errors.Is(err, store.ErrAuth):
		return "the server rejected the credentials (" + text + "): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the profile's keys, and that they belong to this endpoint"
	}
	return text
}

// explainCode recognises the S3/STS error codes the store layer puts into
// its messages, e.g. "s3 ListBuckets: credentials rejected (InvalidAccessKeyId)".
func explainCode(words []string) string {
	for _, w := range words {
		switch w {
		case "InvalidAccessKeyId", "InvalidClientTokenId", "XAdminUserNotFound":
			// XAdminUserNotFound: versitygw's word for an unknown key id.
			return "the server does not know this access key id (" + w + "): check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id"
		case "SignatureDoesNotMatch":
			return "the secret access key does not match the access key id (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key"
		case "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired":
			return "the session token has expired (" + w + "): get fresh credentials (aws sso login, your credential helper, or unset a stale AWS_SESSION_TOKEN) and mount again"
		case "InvalidToken":
			return "the session token is malformed or does not belong to this access key (InvalidToken): check AWS_SESSION_TOKEN, or unset it when using long-term keys"
		case "RequestTimeTooSkewed":
			return "this machine's clock is too far off for request signing (RequestTimeTooSkewed): synchronise it (chronyd or systemd-timesyncd)"
		case "AccessDenied":
			return accessDeniedLine(words)
		case "AllAccessDisabled":
			return "access to this bucket or object has been disabled by the provider (AllAccessDisabled): contact the bucket owner"
		}
	}
	return ""
}

// opPermissions maps operation names that may appear in an error message to
// the IAM action the call needs. The store layer names both SDK operations
// and its own methods (Stat, ReadAt, List) in its messages.
var opPermissions = map[string]string{
	"ListBuckets":             "s3:ListAllMyBuckets",
	"ListObjectsV2":           "s3:ListBucket",
	"ListObjects":             "s3:ListBucket",
	"List":                    "s3:ListBucket",
	"HeadBucket":              "s3:ListBucket",
	"HeadObject":              "s3:GetObject",
	"GetObject":               "s3:GetObject",
	"Stat":                    "s3:GetObject",
	"ReadAt":                  "s3:GetObject",
	"GetBucketLocation":       "s3:GetBucketLocation",
	"PutObject":               "s3:PutObject",
	"Put":                     "s3:PutObject",
	"CreateMultipartUpload":   "s3:PutObject",
	"UploadPart":              "s3:PutObject",
	"CompleteMultipartUpload": "s3:PutObject",
	"CreateBucket":            "s3:CreateBucket",
	"DeleteObject":            "s3:DeleteObject",
	"Delete":                  "s3:DeleteObject",
}

func accessDeniedLine(words []string) string {
	for _, w := range words {
		perm, ok := opPermissions[w]
		if !ok {
			continue
		}
		if perm == "s3:ListAllMyBuckets" {
			return "the credentials may not list buckets (AccessDenied, needs s3:ListAllMyBuckets): grant it, or mount a single bucket with s3://BUCKET"
		}
		return "the credentials lack permission for this request (AccessDenied, needs " + perm + "): grant it in the IAM or bucket policy, or check the bucket and key name"
	}
	return "the credentials are not allowed to make this request (AccessDenied): check the IAM and bucket policies, or mount a single bucket with s3://BUCKET"
}

// configError explains an error from config.LoadDefaultConfig: the profile or
// config files are wrong before any network call was made.
func configError(err error, profile string) error {
	var notExist config.SharedConfigProfileNotExistError
	var roleErr config.SharedConfigAssumeRoleError
	var fileErr config.SharedConfigLoadError
	var mfaErr config.AssumeRoleTokenProviderNotSetError
	var line string
	switch {
	case errors.As(err, &roleErr):
		// Checked first: a missing source_profile wraps a not-exist error.
		line = fmt.Sprintf("profile %q assumes role %s but its source_profile %q is missing or has no keys: fix source_profile in %s or %s",
			profile, roleErr.RoleARN, roleErr.Profile, configFile(), credentialsFile())
	case errors.As(err, &notExist):
		line = fmt.Sprintf("profile %q is not in %s or %s: add it (aws configure --profile %s), or pick another with --profile or AWS_PROFILE",
			notExist.Profile, configFile(), credentialsFile(), notExist.Profile)
	case errors.As(err, &mfaErr):
		line = fmt.Sprintf("profile %q needs an MFA code (mfa_serial), which bucketfs cannot prompt for: export temporary credentials (aws sts get-session-token) or use a profile without MFA", profile)
	case strings.Contains(err.Error(), "only loopback/ecs/eks hosts are allowed"):
		line = fmt.Sprintf("AWS_CONTAINER_CREDENTIALS_FULL_URI %s is plain http to a host that is not loopback, ECS or EKS: use https or one of those addresses, or unset it",
			os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
	case errors.As(err, &fileErr):
		line = fmt.Sprintf("cannot read the AWS config file %s: fix or remove it, or point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE elsewhere", fileErr.Filename)
	default:
		line = fmt.Sprintf("invalid AWS configuration for profile %q (%s): fix %s or %s",
			profile, scrub(oneLine(err.Error()), envSecrets()...), configFile(), credentialsFile())
	}
	return &loadError{line: line, err: err}
}

// retrieveError explains a failed credential retrieval. The chain of
// providers the SDK picked is in the cache's ProviderSources.
func retrieveError(err error, cfg aws.Config, env *config.EnvConfig, shared *config.SharedConfig, profile string) error {
	var sources []aws.CredentialSource
	if ps, ok := cfg.Credentials.(aws.CredentialProviderSource); ok {
		sources = ps.ProviderSources()
	}
	has := func(s ...aws.CredentialSource) bool {
		return slices.ContainsFunc(sources, func(x aws.CredentialSource) bool { return slices.Contains(s, x) })
	}
	role := ""
	if shared != nil {
		role = shared.RoleARN
	}
	what, fix := "", ""
	switch {
	case len(sources) == 1 && sources[0] == aws.CredentialSourceIMDS:
		// Nothing in the environment or the profile: the SDK fell
		// through to instance metadata, which had nothing either.
		line := noCredentialsLine(profile)
		if errors.Is(err, context.DeadlineExceeded) {
			// The metadata client gives up on its own after a few
			// seconds, so name no duration.
			line = strings.Replace(line, "instance metadata)", "instance metadata, which did not answer)", 1)
		}
		return &loadError{line: line, err: err}
	case has(aws.CredentialSourceEnvVarsSTSWebIDToken, aws.CredentialSourceProfileSTSWebIDToken):
		arn := role
		if env != nil && env.RoleARN != "" && has(aws.CredentialSourceEnvVarsSTSWebIDToken) {
			arn = env.RoleARN
		}
		what = "web identity login as " + arn
		fix = "check AWS_ROLE_ARN, that AWS_WEB_IDENTITY_TOKEN_FILE is readable and fresh, and the role's trust policy"
	case has(aws.CredentialSourceSSO, aws.CredentialSourceSSOLegacy):
		what = fmt.Sprintf("SSO login of profile %q", profile)
		fix = "run aws sso login --profile " + profile
	case has(aws.CredentialSourceLogin):
		what = fmt.Sprintf("console login session of profile %q", profile)
		fix = "run aws login --profile " + profile
	case has(aws.CredentialSourceProcess):
		what = fmt.Sprintf("credential_process of profile %q", profile)
		fix = "run the command from the profile by hand and fix what it reports"
	case role != "":
		what = fmt.Sprintf("assuming role %s for profile %q", role, profile)
		fix = "check the source profile's keys, the role's trust policy and sts:AssumeRole permission"
	case has(aws.CredentialSourceIMDS):
		what = fmt.Sprintf("instance metadata (credential_source of profile %q)", profile)
		fix = "run on an instance with an IAM role or change credential_source"
	case has(aws.CredentialSourceHTTP):
		what = "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)"
		fix = "check the task or pod role, or unset those variables"
	default:
		what = fmt.Sprintf("getting credentials for profile %q", profile)
		fix = "check the profile in " + configFile() + " and " + credentialsFile()
	}
	var line string
	var apiErr smithy.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		line = fmt.Sprintf("%s failed (no answer within %s): %s", what, credentialsTimeout, fix)
	case errors.As(err, &apiErr):
		// A code from STS or SSO about the source credentials: the
		// hints written for S3 name the right fix, except AccessDenied,
		// whose S3 hint is about bucket permissions.
		code := apiErr.ErrorCode()
		if l := explainCode([]string{code}); l != "" && code != "AccessDenied" {
			line = fmt.Sprintf("%s failed: %s", what, l)
		} else {
			line = fmt.Sprintf("%s failed (%s: %s): %s", what, code, oneLine(apiErr.ErrorMessage()), fix)
		}
	default:
		line = fmt.Sprintf("%s failed (%s): %s", what, innermost(err), fix)
	}
	secrets := envSecrets()
	for _, c := range []*config.SharedConfig{shared, sourceOf(shared)} {
		if c != nil {
			secrets = append(secrets, c.Credentials.SecretAccessKey, c.Credentials.SessionToken)
		}
	}
	if env != nil {
		secrets = append(secrets, env.Credentials.SecretAccessKey, env.Credentials.SessionToken)
	}
	return &loadError{line: scrub(line, secrets...), err: err}
}

func sourceOf(c *config.SharedConfig) *config.SharedConfig {
	if c == nil {
		return nil
	}
	return c.Source
}

func noCredentialsLine(profile string) string {
	return fmt.Sprintf("no AWS credentials found (tried environment variables, shared config files for profile %q, web identity, container and instance metadata): "+
		"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use --profile, or run on an instance with an IAM role", profile)
}

// innermost returns the text of the deepest wrapped error, which for the SDK's
// "failed to refresh cached credentials, ..., %w" chains is the actual cause.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return oneLine(err.Error())
		}
		err = next
	}
}

func configFile() string {
	if f := os.Getenv("AWS_CONFIG_FILE"); f != "" {
		return f
	}
	return "~/.aws/config"
}

func credentialsFile() string {
	if f := os.Getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		return f
	}
	return "~/.aws/credentials"
}

// envSecrets are the secret values in the environment, removed from any text
// that reaches a message as a last line of defence.
func envSecrets() []string {
	return []string{os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SECRET_KEY"), os.Getenv("AWS_SESSION_TOKEN")}
}

// scrub replaces every occurrence of a secret by a marker. Short values are
// skipped: they cannot be real keys and would mangle ordinary words.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// oneLine collapses all whitespace runs (newlines in SDK errors, process
// output) to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// tokens splits text into identifier-like words, so "List" does not match
// inside "ListBuckets" and codes are found whatever punctuation surrounds
// them.
func tokens(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}
