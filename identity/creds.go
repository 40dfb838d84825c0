package identity

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Credentials of one principal are cached and refreshed this long before
// they expire (less up to 20% jitter, so users do not all refresh at once).
const (
	expiryWindow = 5 * time.Minute
	expiryJitter = 0.2
	// roleDuration is how long an assumed role's credentials last.
	roleDuration = time.Hour
)

// credentials builds the refreshing provider of p's rule.
func (s *Set) credentials(p *Principal) aws.CredentialsProvider {
	var src aws.CredentialsProvider
	name := sessionName(p.User.Name)
	switch p.Rule.Source {
	case SourceRole:
		src = stscreds.NewAssumeRoleProvider(sts.NewFromConfig(s.opts.Host), p.Rule.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			// CloudTrail names the person: the session is called after
			// the user, and SourceIdentity stays with the session
			// through any further role chaining.
			o.RoleSessionName = name
			o.SourceIdentity = aws.String(name)
			o.Duration = roleDuration
		})
	case SourceWebIdentity:
		// AssumeRoleWithWebIdentity is not signed: the host's
		// credentials play no part.
		cfg := s.opts.Host.Copy()
		cfg.Credentials = aws.AnonymousCredentials{}
		tok := tokenFile{path: expand(p.Rule.Token, p.User), uid: p.User.UID}
		src = stscreds.NewWebIdentityRoleProvider(sts.NewFromConfig(cfg), p.Rule.RoleARN, tok, func(o *stscreds.WebIdentityRoleOptions) {
			o.RoleSessionName = name
			o.Duration = roleDuration
		})
	case SourceProfile:
		u, profile, helper := p.User, p.Rule.Profile, s.opts.Helper
		src = aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
			return helper(ctx, u, profile)
		})
	case SourceHost:
		src = s.opts.Host.Credentials
	}
	if src == nil {
		src = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, fmt.Errorf("rule %s: no credentials", p.Rule)
		})
	}
	return aws.NewCredentialsCache(&counting{p: p, src: src, log: s}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = expiryWindow
		o.ExpiryWindowJitterFrac = expiryJitter
	})
}

// retryFailedAfter is how long a failed retrieval answers for itself: a
// user whose source is broken does not send one STS call (or helper run)
// per file operation, nor log one line each.
const retryFailedAfter = 10 * time.Second

// counting counts a principal's retrievals and logs them (never a key).
type counting struct {
	p   *Principal
	src aws.CredentialsProvider
	log *Set

	mu       sync.Mutex
	failedAt time.Time
	failed   error
}

func (c *counting) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c.mu.Lock()
	failed, failedAt := c.failed, c.failedAt
	c.mu.Unlock()
	if failed != nil && c.log.opts.Now().Sub(failedAt) < retryFailedAfter {
		return aws.Credentials{}, failed
	}
	cr, err := c.src.Retrieve(ctx)
	if err != nil {
		failed = fmt.Errorf("credentials of user %s (%s): %w", c.p.User.Name, c.p.Rule, err)
		c.mu.Lock()
		c.failed, c.failedAt = failed, c.log.opts.Now()
		c.mu.Unlock()
		c.p.failures.Add(1)
		c.log.log.Warn("getting credentials for a user failed; their requests fail with EACCES until it works",
			"user", c.p.User.Name, "source", c.p.Rule.String(), "err", oneLine(errString(err)))
		return cr, failed
	}
	c.mu.Lock()
	c.failed = nil
	c.mu.Unlock()
	c.p.refreshes.Add(1)
	exp := int64(0)
	if cr.CanExpire {
		exp = cr.Expires.Unix()
	}
	c.p.expires.Store(exp)
	c.log.log.Info("credentials ready for a user", "user", c.p.User.Name, "source", c.p.Rule.String(), "expires", expText(cr))
	return cr, nil
}

func expText(cr aws.Credentials) string {
	if !cr.CanExpire {
		return "never"
	}
	return cr.Expires.UTC().Format(time.RFC3339)
}

// sessionName makes a user name fit a role session name and a
// SourceIdentity ([\w+=,.@-]{2,64}).
func sessionName(user string) string {
	b := []byte(user)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0) {
			b[i] = '-'
		}
	}
	s := string(b)
	if len(s) < 2 {
		s = "u-" + s
	}
	return s[:min(len(s), 64)]
}

// expand fills a path template: %u the user name, %U the uid, %% a %.
func expand(tmpl string, u User) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '%' || i+1 == len(tmpl) {
			b.WriteByte(tmpl[i])
			continue
		}
		i++
		switch tmpl[i] {
		case 'u':
			b.WriteString(u.Name)
		case 'U':
			fmt.Fprint(&b, u.UID)
		default:
			b.WriteByte(tmpl[i])
		}
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
