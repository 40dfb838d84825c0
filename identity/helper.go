package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// The profile source reads a user's ~/.aws/config, ~/.aws/credentials and
// SSO cache, and runs their credential_process, in a helper process that
// runs as the user (their uid, gid and groups, a clean environment): the
// kernel checks every file it opens against the user's own rights, so no
// symbolic link, hard link or race can make the daemon read a file the
// user could not. The helper is this binary (HelperCommand); it prints
// the credentials as JSON on a pipe to the daemon.

// HelperCommand is the hidden subcommand of bucketfs that runs the helper.
const HelperCommand = "__identity-helper"

// helperTimeout bounds one run (SSO refresh, a slow credential_process).
const helperTimeout = 60 * time.Second

// staticLife is how long long-term keys from a profile are used before
// the profile is read again, so changed or removed keys take effect.
const staticLife = 15 * time.Minute

// helperEnv are the daemon's variables a helper keeps: how to reach AWS,
// nothing that names files or credentials.
var helperEnv = []string{"AWS_CA_BUNDLE", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SSO", "AWS_ENDPOINT_URL_SSO_OIDC",
	"AWS_STS_REGIONAL_ENDPOINTS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "TZ", "LANG"}

type helperOut struct {
	AccessKeyID     string    `json:"AccessKeyId"`
	SecretAccessKey string    `json:"SecretAccessKey"`
	SessionToken    string    `json:"SessionToken,omitempty"`
	Expires         time.Time `json:"Expiration,omitempty"`
	CanExpire       bool      `json:"CanExpire"`
	Source          string    `json:"Source,omitempty"`
}

// runHelper returns the Options.Helper that runs this binary as the user.
func runHelper(region string) func(ctx context.Context, u User, profile string) (aws.Credentials, error) {
	return func(ctx context.Context, u User, profile string) (aws.Credentials, error) {
		ctx, cancel := context.WithTimeout(ctx, helperTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/proc/self/exe", HelperCommand, region, profile)
		cmd.Dir = "/"
		cmd.Env = []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name,
			"PATH=/usr/local/bin:/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED=true"}
		for _, k := range helperEnv {
			if v, ok := os.LookupEnv(k); ok {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.GIDs},
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
		}
		var out, errb limited
		out.max, errb.max = 64<<10, 4<<10
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(errb.String())
			if msg == "" {
				msg = err.Error()
			}
			return aws.Credentials{}, fmt.Errorf("reading the profile of %s as that user: %s", u.Name, oneLine(msg))
		}
		var h helperOut
		if err := json.Unmarshal(out.Bytes(), &h); err != nil || h.AccessKeyID == "" {
			return aws.Credentials{}, fmt.Errorf("reading the profile of %s: the helper gave no credentials", u.Name)
		}
		cr := aws.Credentials{AccessKeyID: h.AccessKeyID, SecretAccessKey: h.SecretAccessKey, SessionToken: h.SessionToken,
			CanExpire: true, Expires: h.Expires, Source: "profile of " + u.Name}
		if !h.CanExpire || h.Expires.IsZero() {
			cr.Expires = time.Now().Add(staticLife + expiryWindow)
		}
		return cr, nil
	}
}

// limited is a buffer that keeps at most max bytes.
type limited struct {
	bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// HelperMain is the helper: args are the default region and the profile
// ("" for the default). It runs as the user and prints their credentials
// as JSON on stdout, or one line on stderr and exit status 1.
func HelperMain(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "bucketfs: internal command, run by the daemon as a user")
		return 2
	}
	region, profile := args[0], args[1]
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	opts := []func(*config.LoadOptions) error{}
	if region != "" {
		opts = append(opts, config.WithDefaultRegion(region))
	}
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, oneLine(err.Error()))
		return 1
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fail(err)
	}
	if cfg.Credentials == nil {
		return fail(errors.New("the profile names no credentials"))
	}
	cr, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fail(err)
	}
	h := helperOut{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken,
		CanExpire: cr.CanExpire, Source: cr.Source}
	if cr.CanExpire {
		h.Expires = cr.Expires
	}
	if err := json.NewEncoder(stdout).Encode(h); err != nil {
		return fail(err)
	}
	return 0
}
