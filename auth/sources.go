package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The values of Options.Credentials (--credentials). Each forces one source
// and ignores the others, so a host where several are present (keys left in
// the environment of an instance with a role) can pin the one it means.
const (
	SourceChain       = ""              // the standard chain (package comment)
	SourceEnv         = "env"           // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
	SourceProfile     = "profile"       // the profile (--profile, AWS_PROFILE, "default") of the shared files
	SourceWebIdentity = "web-identity"  // AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, or the profile's
	SourceContainer   = "container"     // AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI
	SourceInstance    = "instance-role" // EC2 instance metadata
)

// CredentialSources lists the values --credentials accepts besides "".
var CredentialSources = []string{SourceEnv, SourceProfile, SourceWebIdentity, SourceContainer, SourceInstance}

// CheckCredentialsSource reports whether s is a valid --credentials value,
// with the message the command line shows when it is not.
func CheckCredentialsSource(s string) error {
	switch s {
	case SourceChain, "chain", SourceEnv, SourceProfile, SourceWebIdentity, SourceContainer, SourceInstance:
		return nil
	}
	return fmt.Errorf("--credentials %q is not a source: use %s (or leave it out for the standard chain)", s, strings.Join(CredentialSources, ", "))
}

func normalizeSource(s string) string {
	if s == "chain" {
		return SourceChain
	}
	return s
}

// forcedProvider builds the one provider --credentials asks for, or a
// loadError saying in one line why that source has nothing.
func forcedProvider(cfg aws.Config, source string, env *config.EnvConfig, shared *config.SharedConfig, profile string) (aws.CredentialsProvider, error) {
	if env == nil {
		env = &config.EnvConfig{}
	}
	fail := func(format string, a ...any) error {
		return &loadError{line: "--credentials " + source + ": " + fmt.Sprintf(format, a...) + ", or pick another --credentials source"}
	}
	switch source {
	case SourceEnv:
		c := env.Credentials
		// The SDK fills Credentials only when both halves are set; look
		// at the variables to say which one is missing.
		id := os.Getenv("AWS_ACCESS_KEY_ID") + os.Getenv("AWS_ACCESS_KEY")
		secret := os.Getenv("AWS_SECRET_ACCESS_KEY") + os.Getenv("AWS_SECRET_KEY")
		switch {
		case c.HasKeys():
		case id == "" && secret == "":
			return nil, fail("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set: export both")
		case id == "":
			return nil, fail("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: export it")
		default:
			return nil, fail("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: export it")
		}
		c.Source = config.CredentialsSourceName
		return credentials.StaticCredentialsProvider{Value: c, Source: []aws.CredentialSource{aws.CredentialSourceEnvVars}}, nil

	case SourceProfile:
		// Load selected the profile explicitly, so the SDK resolved it
		// ahead of environment keys; what is left to check is that the
		// profile names some source itself instead of falling through to
		// the container or instance metadata.
		if !profileHasCredentials(shared) {
			return nil, fail("profile %q in %s or %s has no credentials (no aws_access_key_id, role_arn with source_profile or credential_source, web_identity_token_file, sso_session or credential_process): add them with aws configure --profile %s",
				profile, configFile(), credentialsFile(), profile)
		}
		return cfg.Credentials, nil

	case SourceWebIdentity:
		roleARN, tokenFile, session := env.RoleARN, env.WebIdentityTokenFilePath, env.RoleSessionName
		if tokenFile == "" && shared != nil {
			roleARN, tokenFile, session = shared.RoleARN, shared.WebIdentityTokenFile, shared.RoleSessionName
		}
		if tokenFile == "" {
			return nil, fail("AWS_WEB_IDENTITY_TOKEN_FILE is not set and profile %q has no web_identity_token_file: set it with AWS_ROLE_ARN", profile)
		}
		if roleARN == "" {
			return nil, fail("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not: set the role to assume")
		}
		// AssumeRoleWithWebIdentity is not signed, so the STS client needs
		// no credentials of its own.
		client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.Credentials = aws.AnonymousCredentials{} })
		return stscreds.NewWebIdentityRoleProvider(client, roleARN, stscreds.IdentityTokenFile(tokenFile),
			func(o *stscreds.WebIdentityRoleOptions) {
				if session != "" {
					o.RoleSessionName = session
				}
				o.CredentialSources = []aws.CredentialSource{aws.CredentialSourceEnvVarsSTSWebIDToken}
			}), nil

	case SourceContainer:
		endpoint := env.ContainerCredentialsEndpoint
		if endpoint == "" && env.ContainerCredentialsRelativePath != "" {
			endpoint = "http://169.254.170.2" + env.ContainerCredentialsRelativePath
		}
		if endpoint == "" {
			return nil, fail("neither AWS_CONTAINER_CREDENTIALS_FULL_URI nor AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is set, so this is not a container with a task or pod role")
		}
		if err := checkContainerURL(endpoint); err != nil {
			return nil, fail("%v: use an https URL or a loopback, ECS or EKS address", err)
		}
		return endpointcreds.New(endpoint, func(o *endpointcreds.Options) {
			o.HTTPClient = cfg.HTTPClient
			o.AuthorizationToken = env.ContainerAuthorizationToken
			if path := os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); path != "" {
				o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
					b, err := os.ReadFile(path)
					return strings.TrimSpace(string(b)), err
				})
			}
			o.CredentialSources = []aws.CredentialSource{aws.CredentialSourceHTTP}
		}), nil

	case SourceInstance:
		if env.EC2IMDSClientEnableState == imds.ClientDisabled {
			return nil, fail("instance metadata is disabled by AWS_EC2_METADATA_DISABLED=true: unset it")
		}
		return ec2rolecreds.New(func(o *ec2rolecreds.Options) {
			o.Client = imds.NewFromConfig(cfg)
			o.CredentialSources = []aws.CredentialSource{aws.CredentialSourceIMDS}
		}), nil
	}
	return nil, &loadError{line: CheckCredentialsSource(source).Error()}
}

// profileHasCredentials reports whether a profile names a credential source
// of its own (the cases of the SDK's resolveCredsFromProfile before it falls
// back to the container and instance metadata).
func profileHasCredentials(c *config.SharedConfig) bool {
	if c == nil {
		return false
	}
	return c.Credentials.HasKeys() || c.Source != nil || c.CredentialSource != "" ||
		c.WebIdentityTokenFile != "" || c.SSOSessionName != "" || c.SSOStartURL != "" ||
		c.SSOAccountID != "" || c.LoginSession != "" || c.CredentialProcess != ""
}

// checkContainerURL applies the SDK's rule for the container endpoint:
// plain http only to loopback and the ECS/EKS link-local addresses.
func checkContainerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("container credentials URL %q is not a URL", s)
	}
	if u.Scheme != "http" {
		return nil
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() == "localhost" || (ip != nil && (ip.IsLoopback() || ip.Equal(net.ParseIP("169.254.170.2")) ||
		ip.Equal(net.ParseIP("169.254.170.23")) || ip.Equal(net.ParseIP("fd00:ec2::23")))) {
		return nil
	}
	return fmt.Errorf("container credentials URL %s is plain http to a host that is not loopback, ECS or EKS", s)
}

// forcedFailure explains a failed retrieval from a forced source.
func forcedFailure(source string, err error, env *config.EnvConfig, shared *config.SharedConfig, profile string) string {
	cause := innermost(err)
	if isTimeout(err) {
		// Load's deadline or the metadata client's own, shorter one.
		cause = "unreachable, or no answer in time"
	}
	switch source {
	case SourceInstance:
		return fmt.Sprintf("--credentials instance-role: instance metadata at %s gave no credentials (%s): run on an EC2 instance with an IAM role attached (in a container, set the metadata hop limit to 2), or pick another --credentials source",
			imdsEndpoint(env, shared), cause)
	case SourceContainer:
		return fmt.Sprintf("--credentials container: the container credentials endpoint gave no credentials (%s): check the task or pod role, or pick another --credentials source", cause)
	case SourceWebIdentity:
		return fmt.Sprintf("--credentials web-identity: the web identity login failed (%s): check AWS_ROLE_ARN, that AWS_WEB_IDENTITY_TOKEN_FILE is readable and fresh, and the role's trust policy", cause)
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// imdsEndpoint names the metadata service the SDK talks to.
func imdsEndpoint(env *config.EnvConfig, shared *config.SharedConfig) string {
	if env != nil && env.EC2IMDSEndpoint != "" {
		return env.EC2IMDSEndpoint
	}
	if shared != nil && shared.EC2IMDSEndpoint != "" {
		return shared.EC2IMDSEndpoint
	}
	return "169.254.169.254"
}

// instanceRoleName asks instance metadata which role it serves, for
// messages only ("instance role NAME"); "" when it does not answer quickly.
func instanceRoleName(ctx context.Context, cfg aws.Config) string {
	ctx, cancel := context.WithTimeout(ctx, imdsRegionTimeout)
	defer cancel()
	out, err := imds.NewFromConfig(cfg).GetMetadata(ctx, &imds.GetMetadataInput{Path: "iam/security-credentials/"})
	if err != nil {
		return ""
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(name)
}
