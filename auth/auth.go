// Package auth builds the aws.Config that every S3 client of bucketfs uses and
// turns credential failures into one clear line (see Explain).
//
// Region is chosen in this order, first non-empty wins:
//
//  1. Options.Region (--region)
//  2. AWS_REGION
//  3. AWS_DEFAULT_REGION (what the AWS CLI and R packages such as aws.s3 and
//     paws read; we read it ourselves so the order does not depend on the SDK
//     version)
//  4. the region of the selected profile in the shared config file
//  5. the EC2 instance metadata service, only when nothing above gave one and
//     bounded by a short timeout so a host without IMDS does not hang
//  6. "us-east-1"
//
// Credentials come from the SDK's default chain (config.LoadDefaultConfig):
// environment keys (with optional AWS_SESSION_TOKEN), the shared config and
// credentials files for the profile (static keys, assume-role, SSO,
// credential_process), web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE),
// the container endpoint, and EC2 instance metadata (IMDSv2 with IMDSv1
// fallback, honouring AWS_EC2_METADATA_SERVICE_ENDPOINT). An explicit --profile
// takes precedence over environment keys, as in the AWS CLI. Options.Credentials
// (--credentials) instead forces exactly one source (see sources.go). Load
// retrieves the credentials once, under a timeout, so a mount without usable
// credentials fails at once with a readable message instead of on the first
// ls. Afterwards they are refreshed ahead of expiry, and kept while a refresh
// fails but they are still valid (see rotate.go).
//
// The S3 endpoint is Options.EndpointURL, else AWS_ENDPOINT_URL_S3, else
// AWS_ENDPOINT_URL, else the profile's services/s3 endpoint_url, else the
// profile's endpoint_url (the last two skipped when
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true), else AWS itself. The S3 client
// should set s3.Options.BaseEndpoint from Result.Endpoint; Load does not put an
// --endpoint-url into aws.Config.BaseEndpoint because that would also redirect
// STS and every other client built from the config.
package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/logincreds"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"

	"github.com/bucketfs/bucketfs/internal/reqstat"
)

// Options selects profile, region and endpoint; empty fields mean "discover".
type Options struct {
	Profile     string // --profile; "" means AWS_PROFILE or "default"
	Region      string // --region; "" means discover (see package comment)
	EndpointURL string // --endpoint-url; "" means AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS
	// Credentials (--credentials) forces one source: SourceEnv,
	// SourceProfile, SourceWebIdentity, SourceContainer or SourceInstance;
	// "" (SourceChain) uses the standard chain.
	Credentials string
	Logger      *slog.Logger
	MaxConns    int // HTTP connections per host, 0 = DefaultMaxConns
	// OnRefresh, if set, is called after every refresh of the credentials
	// (not the first retrieval, which Load reports in Result): ok says
	// whether the source answered with usable credentials, expires is
	// the real expiry of the credentials in use afterwards (zero when
	// they do not expire). For metrics; it must not block.
	OnRefresh func(ok bool, expires time.Time)
}

// Result is what Load resolved. Config.Credentials is one shared
// aws.CredentialsCache, so every client built from Config refreshes the same
// credentials once.
type Result struct {
	Config       aws.Config
	Endpoint     string // resolved S3 endpoint URL or "" for AWS
	Region       string
	RegionSource string // "--region", "AWS_REGION", "AWS_DEFAULT_REGION", "profile NAME", "instance metadata", "default us-east-1"
	Source       string // where the credentials came from, never a secret
	// Expires is when the credentials Load retrieved expire; zero for
	// long-term keys. The mount refreshes them before then (see refresher).
	Expires time.Time
}

// Tunables.
const (
	DefaultMaxConns = 64
	defaultRegion   = "us-east-1"

	// maxAttempts bounds retries of one S3 call. Five attempts with backoff
	// capped at maxBackoff ride out a short outage or throttling burst
	// without leaving a reader blocked for minutes.
	maxAttempts = 5
	maxBackoff  = 10 * time.Second

	dialTimeout           = 10 * time.Second
	keepAlive             = 30 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second
	idleConnTimeout       = 90 * time.Second
)

// Variables rather than constants so tests can shorten them.
var (
	// credentialsTimeout bounds the one credential retrieval in Load.
	credentialsTimeout = 10 * time.Second
	// imdsRegionTimeout bounds the instance-metadata region lookup.
	imdsRegionTimeout = 2 * time.Second
)

// Load resolves region, endpoint and credentials and retrieves the
// credentials once. Errors wrap store.ErrAuth when no usable credentials could
// be found; pass any error to Explain for a one-line message.
func Load(ctx context.Context, o Options) (Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	source := normalizeSource(o.Credentials)
	if err := CheckCredentialsSource(source); err != nil {
		return Result{}, &loadError{line: err.Error()}
	}
	region, regionSource := regionFromFlagOrEnv(o)
	httpClient := newHTTPClient(o.MaxConns)
	// One retry budget for every client built from this config (one per
	// region), so the mount as a whole stops retrying a dead server.
	budget := ratelimit.NewTokenRateLimit(retryBudget)
	load := func(region string) (aws.Config, error) {
		opts := []func(*config.LoadOptions) error{
			config.WithHTTPClient(httpClient),
			config.WithRetryer(func() aws.Retryer { return newRetryer(budget) }),
			config.WithLogger(sdkLogger{log}),
			// The container provider otherwise builds a client without
			// any response timeout of its own.
			config.WithEndpointCredentialOptions(func(eo *endpointcreds.Options) {
				eo.HTTPClient = httpClient
			}),
		}
		switch {
		case o.Profile != "":
			opts = append(opts, config.WithSharedConfigProfile(o.Profile))
		case source == SourceProfile:
			// Naming the profile makes the SDK resolve it ahead of
			// keys in the environment.
			opts = append(opts, config.WithSharedConfigProfile(profileName(o, nil)))
		}
		if region != "" {
			opts = append(opts, config.WithRegion(region))
		}
		return config.LoadDefaultConfig(ctx, opts...)
	}

	cfg, err := load(region)
	if err != nil {
		return Result{}, configError(err, profileName(o, nil))
	}
	env, shared := configSources(cfg)
	profile := profileName(o, shared)

	if region == "" {
		if cfg.Region != "" {
			// Neither flag nor environment set a region, so the SDK took
			// it from the profile.
			region, regionSource = cfg.Region, "profile "+profile
		} else {
			region, regionSource = imdsRegion(ctx, cfg, log), "instance metadata"
			if region == "" {
				region, regionSource = defaultRegion, "default "+defaultRegion
			}
			// Load again: the STS clients behind assume-role and web
			// identity were built during the first load and copied its
			// empty region.
			if cfg, err = load(region); err != nil {
				return Result{}, configError(err, profile)
			}
			env, shared = configSources(cfg)
		}
	}
	log.Debug("aws region", "region", region, "from", regionSource)

	endpoint, err := resolveEndpoint(o, env, shared)
	if err != nil {
		return Result{}, err
	}
	if endpoint != "" {
		log.Debug("s3 endpoint", "url", endpoint)
	}

	if source != SourceChain {
		p, err := forcedProvider(cfg, source, env, shared, profile)
		if err != nil {
			return Result{}, err
		}
		cfg.Credentials = p
	}
	if cfg.Credentials == nil {
		return Result{}, &loadError{line: noCredentialsLine(profile)}
	}
	// One cache over the refresher, shared by every client built from cfg;
	// the refresher decides when to refresh (see rotate.go), so the cache
	// itself has no expiry window.
	ref := newRefresher(cfg.Credentials, log, func(c aws.Credentials) string {
		return describeSource(c, shared, env, profile)
	})
	ref.onRefresh = o.OnRefresh
	cfg.Credentials = aws.NewCredentialsCache(ref)
	cctx, cancel := context.WithTimeout(ctx, credentialsTimeout)
	creds, err := cfg.Credentials.Retrieve(cctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up (Ctrl-C); that is not a credential problem.
			return Result{}, ctx.Err()
		}
		if line := forcedFailure(source, err, env, shared, profile); line != "" {
			return Result{}, &loadError{line: line, err: err}
		}
		return Result{}, retrieveError(err, cfg, env, shared, profile)
	}

	credSource := describeSource(creds, shared, env, profile)
	if creds.Source == ec2rolecreds.ProviderName {
		if name := instanceRoleName(ctx, cfg); name != "" {
			credSource += " " + name
		}
	}
	var expires time.Time
	if real := ref.current(); real.CanExpire {
		expires = real.Expires
		log.Debug("credentials from "+credSource, "expires", expires.UTC().Format(time.RFC3339))
	} else {
		log.Debug("credentials from " + credSource)
	}

	return Result{
		Config:       cfg,
		Endpoint:     endpoint,
		Region:       region,
		RegionSource: regionSource,
		Source:       credSource,
		Expires:      expires,
	}, nil
}

// regionFromFlagOrEnv covers steps 1-3 of the region order.
func regionFromFlagOrEnv(o Options) (region, source string) {
	if r := strings.TrimSpace(o.Region); r != "" {
		return r, "--region"
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if r := strings.TrimSpace(os.Getenv(k)); r != "" {
			return r, k
		}
	}
	return "", ""
}

// imdsRegion asks the instance metadata service for the region, or returns ""
// when there is none within imdsRegionTimeout. The client comes from cfg so it
// honours AWS_EC2_METADATA_DISABLED and AWS_EC2_METADATA_SERVICE_ENDPOINT, and
// the SDK shortens its dial and header timeouts for a BuildableClient.
func imdsRegion(ctx context.Context, cfg aws.Config, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, imdsRegionTimeout)
	defer cancel()
	client := imds.NewFromConfig(cfg, func(o *imds.Options) {
		o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), 2)
	})
	// placement/region is a plain-text path; the SDK's own GetRegion parses
	// the instance identity document, kept as a fallback for old IMDS fakes.
	out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "placement/region"})
	if err == nil {
		b, rerr := io.ReadAll(io.LimitReader(out.Content, 64))
		out.Content.Close()
		if r := strings.TrimSpace(string(b)); rerr == nil && r != "" {
			return r
		}
	}
	if ctx.Err() == nil {
		if out, err2 := client.GetRegion(ctx, &imds.GetRegionInput{}); err2 == nil && out.Region != "" {
			return out.Region
		}
	}
	log.Debug("no region from instance metadata", "err", oneLine(errString(err)))
	return ""
}

// newHTTPClient builds the transport shared by all clients. It must stay an
// *awshttp.BuildableClient: the SDK adds AWS_CA_BUNDLE to that type only and
// refuses any other client when the variable is set; IMDS clients also clone
// it with their own short timeouts.
func newHTTPClient(maxConns int) *awshttp.BuildableClient {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = dialTimeout
			d.KeepAlive = keepAlive
		}).
		WithTransportOptions(func(tr *http.Transport) {
			// With virtual-hosted addressing every bucket is its own host,
			// so the total idle pool is larger than the per-host one.
			tr.MaxIdleConns = max(4*maxConns, 100)
			tr.MaxIdleConnsPerHost = maxConns
			tr.MaxConnsPerHost = maxConns
			tr.IdleConnTimeout = idleConnTimeout
			tr.TLSHandshakeTimeout = tlsHandshakeTimeout
			tr.ResponseHeaderTimeout = responseHeaderTimeout
			tr.ExpectContinueTimeout = time.Second
			tr.DisableKeepAlives = false
		})
}

// retryBudget is the size of the mount's retry token bucket. The SDK takes
// 14 tokens per retry (5 for a throttling answer), refunds them when the
// retry succeeds, and adds 1 for every call that succeeds at once. The SDK's
// own default (500) is drained by one network blip under dozens of parallel
// reads, after which calls fail at once with "retry quota exceeded"; 5000
// holds a blip in which every one of the mount's 64 GETs retries four times
// (64*4*14 = 3584). Under a longer outage it runs dry after ~350 retries,
// and from then on each call is tried once, so a dead server is not
// hammered; successes refill it once the server answers again. A variable
// so tests can make it small.
var retryBudget uint = 5000

// newRetryer builds the retryer of one client: at most maxAttempts attempts,
// exponential backoff with full jitter capped at maxBackoff (the SDK's
// standard retryer), and retries drawn from the shared budget. Every retry
// granted is counted on the request's context (reqstat), so the store call
// that sent it can report its retries.
func newRetryer(budget retry.RateLimiter) aws.Retryer {
	return countingRetryer{retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = budget
		o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(truncatedResponse))
	})}
}

// countingRetryer is the SDK's retryer plus a count of the retries it
// grants. The SDK asks GetRetryToken, with the operation's context, once
// before each retry and not at all when it gives up, so the count is the
// number of attempts after the first.
type countingRetryer struct{ aws.RetryerV2 }

func (r countingRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	release, err := r.RetryerV2.GetRetryToken(ctx, opErr)
	if err == nil {
		reqstat.Retried(ctx)
	}
	return release, err
}

// truncatedResponse makes a response whose body ended before its
// Content-Length (a listing's XML cut off by a dropped connection)
// retryable. The SDK retries a connection reset but not a clean close
// mid-body, which it reports as a deserialization error. Every request
// bucketfs sends is idempotent (GET, HEAD, LIST; PUT of the same bytes in
// tools), so sending it again is safe.
func truncatedResponse(err error) aws.Ternary {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

// resolveEndpoint implements the endpoint order of the package comment.
func resolveEndpoint(o Options, env *config.EnvConfig, shared *config.SharedConfig) (string, error) {
	type candidate struct{ value, from string }
	cands := []candidate{
		{o.EndpointURL, "--endpoint-url"},
		{os.Getenv("AWS_ENDPOINT_URL_S3"), "AWS_ENDPOINT_URL_S3"},
		{os.Getenv("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL"},
	}
	ignore := false
	if env != nil && env.IgnoreConfiguredEndpoints != nil {
		ignore = *env.IgnoreConfiguredEndpoints
	} else if shared != nil && shared.IgnoreConfiguredEndpoints != nil {
		ignore = *shared.IgnoreConfiguredEndpoints
	}
	if ignore {
		cands = cands[:1]
	} else if shared != nil {
		cands = append(cands,
			candidate{shared.Services.ServiceValues["s3"]["endpoint_url"], "the profile's services s3 endpoint_url"},
			candidate{shared.BaseEndpoint, "the profile's endpoint_url"})
	}
	for _, c := range cands {
		v := strings.TrimSpace(c.value)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("invalid S3 endpoint %q from %s: it must look like https://host[:port]", v, c.from)
		}
		return strings.TrimRight(v, "/"), nil
	}
	return "", nil
}

// configSources digs the environment and shared-config values the SDK read
// out of cfg, so messages can name the profile, role and files involved.
func configSources(cfg aws.Config) (*config.EnvConfig, *config.SharedConfig) {
	var env *config.EnvConfig
	var shared *config.SharedConfig
	for _, s := range cfg.ConfigSources {
		switch c := s.(type) {
		case config.EnvConfig:
			if env == nil {
				env = &c
			}
		case *config.EnvConfig:
			if env == nil {
				env = c
			}
		case config.SharedConfig:
			if shared == nil {
				shared = &c
			}
		case *config.SharedConfig:
			if shared == nil {
				shared = c
			}
		}
	}
	return env, shared
}

// profileName is the profile the SDK used (or would have used).
func profileName(o Options, shared *config.SharedConfig) string {
	if o.Profile != "" {
		return o.Profile
	}
	if shared != nil && shared.Profile != "" {
		return shared.Profile
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
		if p := os.Getenv(k); p != "" {
			return p
		}
	}
	return "default"
}

// describeSource names where creds came from, from the provider name the SDK
// stores in aws.Credentials.Source.
func describeSource(creds aws.Credentials, shared *config.SharedConfig, env *config.EnvConfig, profile string) string {
	src := creds.Source
	switch {
	case src == config.CredentialsSourceName:
		if creds.SessionToken != "" {
			return "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)"
		}
		return "environment (AWS_ACCESS_KEY_ID)"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		// "SharedConfigCredentials: FILE"; the source profile of an
		// assume-role chain never gets here (its keys are the STS input).
		return "profile " + profile
	case src == stscreds.ProviderName:
		if shared != nil && shared.RoleARN != "" {
			return fmt.Sprintf("profile %s (assume role %s)", profile, shared.RoleARN)
		}
		return "profile " + profile + " (assume role)"
	case src == stscreds.WebIdentityProviderName:
		if env != nil && env.RoleARN != "" && env.WebIdentityTokenFilePath != "" {
			return "web identity (" + env.RoleARN + ")"
		}
		if shared != nil && shared.RoleARN != "" {
			return fmt.Sprintf("web identity (profile %s, %s)", profile, shared.RoleARN)
		}
		return "web identity"
	case src == endpointcreds.ProviderName:
		return "container"
	case src == ec2rolecreds.ProviderName:
		return "instance role"
	case src == ssocreds.ProviderName:
		return "profile " + profile + " (SSO)"
	case src == processcreds.ProviderName:
		return "profile " + profile + " (credential_process)"
	case src == logincreds.ProviderName:
		return "profile " + profile + " (aws login)"
	case src == credentials.StaticCredentialsName:
		return "static credentials"
	case src == "":
		return "unknown"
	}
	return src
}

// sdkLogger forwards the SDK's own log lines (warnings such as a credential
// expiry extension) to slog. Request/response logging stays off, so no
// signed headers reach it.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "aws sdk: "+oneLine(fmt.Sprintf(format, v...)))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
