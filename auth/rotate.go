package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Rotation tunables; variables so tests can shorten them.
var (
	// refreshWindow is how long before expiry credentials are replaced.
	// AWS makes new instance-role credentials available at least five
	// minutes before the old ones expire, so a mount that refreshes five
	// minutes early never signs with keys that are about to lapse.
	refreshWindow = 5 * time.Minute
	// refreshJitter shortens the window by up to this fraction, so many
	// mounts on one host do not ask the metadata service at the same moment.
	refreshJitter = 0.2
	// failedRefreshRetry is how soon a failed refresh is tried again while
	// the current credentials are still valid.
	failedRefreshRetry = 10 * time.Second
	// refreshTimeout bounds a refresh attempt while valid credentials are
	// in hand: requests wait for it, and the old keys serve meanwhile.
	refreshTimeout = 5 * time.Second
	// minValidity is the least time credentials must have left to be used
	// after a failed refresh; a request signed with them must still arrive
	// before they expire.
	minValidity = 10 * time.Second
)

// refresher sits between the credential provider and the one shared
// aws.CredentialsCache and decides when to refresh and what to do when a
// refresh fails. The SDK's own knobs do not cover this:
//
//   - CredentialsCacheOptions.ExpiryWindow is ignored by the instance-role
//     provider for credentials with less than 15 minutes left, so those were
//     used until the second they expired;
//   - after a failed refresh the cache hands the provider the window-adjusted
//     expiry, so it cannot tell "about to be refreshed" from "expired", and
//     the instance-role provider then invents an expiry 5-15 minutes out even
//     for keys that have already lapsed.
//
// The refresher reports an expiry refreshWindow (or half the remaining
// lifetime, if shorter) before the real one, so the cache asks again early.
// When that early refresh fails it keeps serving the current credentials
// for as long as they are really valid, retrying every failedRefreshRetry,
// and switches as soon as the source answers again.
type refresher struct {
	p      aws.CredentialsProvider
	log    *slog.Logger
	source func(aws.Credentials) string // names the source in log lines
	// onRefresh, if set, hears the outcome of every refresh after the
	// first retrieval (Options.OnRefresh).
	onRefresh func(ok bool, expires time.Time)

	mu   sync.Mutex
	last aws.Credentials // the newest good credentials, with their real expiry
}

func newRefresher(p aws.CredentialsProvider, log *slog.Logger, source func(aws.Credentials) string) *refresher {
	return &refresher{p: p, log: log, source: source}
}

// current returns the newest good credentials with their real expiry.
func (r *refresher) current() aws.Credentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *refresher) Retrieve(ctx context.Context) (aws.Credentials, error) {
	last := r.current()
	now := time.Now()
	stillValid := last.HasKeys() && (!last.CanExpire || last.Expires.After(now.Add(minValidity)))
	if stillValid {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
	}
	// The SDK wraps the chain it resolves in its own cache, which would
	// answer from memory until the real expiry; make it ask the source.
	if inv, ok := r.p.(interface{ Invalidate() }); ok {
		inv.Invalidate()
	}
	creds, err := r.p.Retrieve(ctx)
	if err == nil && !creds.HasKeys() {
		err = errors.New("provider returned empty credentials")
	}
	if err == nil && creds.CanExpire && !creds.Expires.After(now) {
		err = fmt.Errorf("provider returned credentials that expired at %s", creds.Expires.UTC().Format(time.RFC3339))
	}
	if err != nil {
		if last.HasKeys() {
			r.refreshed(false, last)
		}
		if !stillValid {
			return aws.Credentials{Source: creds.Source}, err
		}
		next := now.Add(failedRefreshRetry)
		if until := last.Expires.Add(-minValidity); last.CanExpire && until.Before(next) {
			next = until
		}
		r.log.Warn("refreshing AWS credentials failed; still using the current ones while they are valid",
			"source", r.source(last), "valid_until", last.Expires.UTC().Format(time.RFC3339),
			"retry_in", next.Sub(now).Round(time.Second).String(), "err", scrub(oneLine(errString(err)), envSecrets()...))
		out := last
		out.CanExpire = true
		out.Expires = next
		return out, nil
	}

	r.mu.Lock()
	r.last = creds
	r.mu.Unlock()
	if last.HasKeys() {
		r.refreshed(true, creds)
		if last.AccessKeyID != creds.AccessKeyID || last.SessionToken != creds.SessionToken {
			r.log.Info("AWS credentials rotated", "source", r.source(creds), "expires", expiresText(creds))
		} else {
			r.log.Debug("AWS credentials refreshed, unchanged", "source", r.source(creds), "expires", expiresText(creds))
		}
	}
	if creds.CanExpire {
		creds.Expires = creds.Expires.Add(-earlyBy(creds.Expires.Sub(now)))
	}
	return creds, nil
}

// refreshed reports a refresh and the real expiry of the credentials in
// use after it.
func (r *refresher) refreshed(ok bool, inUse aws.Credentials) {
	if r.onRefresh == nil {
		return
	}
	var expires time.Time
	if inUse.CanExpire {
		expires = inUse.Expires
	}
	r.onRefresh(ok, expires)
}

// earlyBy is how long before expiry credentials with left remaining are
// refreshed: refreshWindow less up to refreshJitter of it, but at most half
// of what is left, so short-lived credentials are still used for a while.
func earlyBy(left time.Duration) time.Duration {
	w := time.Duration(float64(refreshWindow) * (1 - refreshJitter*rand.Float64()))
	return min(w, left/2)
}

func expiresText(c aws.Credentials) string {
	if !c.CanExpire {
		return "never"
	}
	return c.Expires.UTC().Format(time.RFC3339)
}

// ProviderSources forwards the chain the SDK picked, which retrieveError
// reads to name the source that failed.
func (r *refresher) ProviderSources() []aws.CredentialSource {
	if s, ok := r.p.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

// IsCredentialsProvider lets the SDK see through the wrapper (it checks for
// anonymous credentials this way).
func (r *refresher) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	return aws.IsCredentialsProvider(r.p, target)
}
