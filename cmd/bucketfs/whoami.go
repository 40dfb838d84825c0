package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bucketfs/bucketfs/auth"
	"github.com/bucketfs/bucketfs/identity"
	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/s3"
)

const whoamiUsage = `Usage:
  bucketfs whoami [flags]

Shows which credentials "bucketfs mount" would use with the same flags, and
whether they work: the source (environment, profile NAME, web identity,
container, instance role NAME), the account and ARN from STS
GetCallerIdentity, the region and where it came from, when the credentials
expire, and whether they may list buckets. Against an S3-compatible server
without STS it says so and still checks the buckets. Exits 0 only when the
credentials work; a problem is explained in one line on stderr. It never
prints a secret.

Examples:
  bucketfs whoami
  bucketfs whoami --profile analytics
  bucketfs whoami --credentials instance-role --json
  bucketfs whoami --endpoint-url http://127.0.0.1:7070

Flags:
`

// whoamiTimeout bounds the whole check; each step has shorter limits of its
// own (credentials 10s, STS 15s or 5s at a custom endpoint).
const whoamiTimeout = 60 * time.Second

// whoamiReport is what whoami found, also its --json form.
type whoamiReport struct {
	Source       string     `json:"source,omitempty"`
	Expires      *time.Time `json:"expires,omitempty"`
	STS          string     `json:"sts"` // "ok", "unavailable", "failed" or "skipped"
	STSDetail    string     `json:"sts_detail,omitempty"`
	Account      string     `json:"account,omitempty"`
	ARN          string     `json:"arn,omitempty"`
	UserID       string     `json:"user_id,omitempty"`
	Region       string     `json:"region,omitempty"`
	RegionSource string     `json:"region_source,omitempty"`
	Endpoint     string     `json:"endpoint,omitempty"` // "" for AWS
	ListBuckets  string     `json:"list_buckets"`       // "allowed", "denied", "failed" or "skipped"
	BucketCount  *int       `json:"bucket_count,omitempty"`
	Problem      string     `json:"problem,omitempty"` // one line: cause and fix
	OK           bool       `json:"ok"`
}

type whoamiConfig struct {
	connFlags
	JSON bool
	// User (--user, root only) checks the identity a per-user mount gives
	// that user under the rules of Identities (peruser.go).
	User       string
	Identities string
}

func parseWhoamiArgs(args []string, stdout io.Writer) (whoamiConfig, error) {
	var c whoamiConfig
	fs := newFlagSet("whoami")
	c.connFlags.register(fs)
	fs.BoolVar(&c.JSON, "json", false, "print the report as one JSON object")
	fs.StringVar(&c.User, "user", "", "(root) show and check the identity a per-user mount (--identity per-user) gives this user `name`")
	fs.StringVar(&c.Identities, "identities", "", "with --user, the identity rules `file` (default "+identity.DefaultPath+")")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if isHelp(err) {
			fmt.Fprint(stdout, whoamiUsage)
			printFlags(stdout, fs)
			return c, err
		}
		return c, usageError{err.Error()}
	}
	if len(pos) > 0 {
		return c, usagef("unexpected argument %q: whoami takes only flags", pos[0])
	}
	return c, c.connFlags.check()
}

func whoamiCommand(args []string, stdout, stderr io.Writer) error {
	c, err := parseWhoamiArgs(args, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), whoamiTimeout)
	defer cancel()
	r := whoami(ctx, c)
	if c.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printWhoami(stdout, r)
	}
	if !r.OK {
		return errors.New(r.Problem)
	}
	if r.Problem != "" {
		// The credentials work but cannot list buckets: say so, exit 0.
		fmt.Fprintf(stderr, "bucketfs whoami: %s\n", r.Problem)
	}
	return nil
}

// whoami runs the checks. It never fails: what went wrong is in Problem.
func whoami(ctx context.Context, c whoamiConfig) whoamiReport {
	r := whoamiReport{STS: "skipped", ListBuckets: "skipped"}
	log := slog.New(slog.DiscardHandler)
	a, err := auth.Load(ctx, auth.Options{Profile: c.Profile, Region: c.Region, EndpointURL: c.Endpoint, Credentials: c.Credentials, Logger: log})
	if err != nil {
		r.Problem = auth.Explain(err)
		return r
	}
	r.Source, r.Region, r.RegionSource, r.Endpoint = a.Source, a.Region, a.RegionSource, a.Endpoint
	if c.User != "" {
		if a, err = whoamiUser(ctx, c, a, &r); err != nil {
			r.Problem = err.Error()
			return r
		}
	}
	if !a.Expires.IsZero() {
		exp := a.Expires.UTC()
		r.Expires = &exp
	}

	// Both checks run even when the first fails: the second often says
	// more (an S3-compatible server has no STS at all).
	credsRejected := false
	id, err := auth.CallerIdentity(ctx, a)
	switch {
	case err == nil:
		r.STS, r.Account, r.ARN, r.UserID = "ok", id.Account, id.ARN, id.UserID
	case errors.Is(err, auth.ErrNoSTS):
		r.STS, r.STSDetail = "unavailable", err.Error()
	default:
		r.STS, r.STSDetail = "failed", auth.Explain(err)
		credsRejected = errors.Is(err, store.ErrAuth)
		r.Problem = r.STSDetail
	}

	st := s3.New(a.Config, s3.Options{Endpoint: a.Endpoint, PathStyle: c.PathStyle, Logger: log})
	buckets, err := st.ListBuckets(ctx)
	switch {
	case err == nil:
		n := len(buckets)
		r.ListBuckets, r.BucketCount = "allowed", &n
	case errors.Is(err, store.ErrAccessDenied):
		// The server knew the key well enough to refuse it: the
		// credentials work, they only lack s3:ListAllMyBuckets.
		r.ListBuckets = "denied"
		if r.Problem == "" {
			r.Problem = auth.Explain(err)
		}
	default:
		r.ListBuckets = "failed"
		credsRejected = credsRejected || errors.Is(err, store.ErrAuth)
		if r.Problem == "" || errors.Is(err, store.ErrAuth) {
			r.Problem = explainPreflight(err, a.Endpoint).Error()
		}
	}
	r.OK = !credsRejected && (r.ListBuckets == "allowed" || r.ListBuckets == "denied")
	return r
}

// printWhoami writes the report as aligned "name  value" lines.
func printWhoami(w io.Writer, r whoamiReport) {
	line := func(name, format string, a ...any) {
		fmt.Fprintf(w, "%-13s %s\n", name, fmt.Sprintf(format, a...))
	}
	if r.Source == "" {
		line("credentials", "none usable")
		return
	}
	line("credentials", "%s", r.Source)
	if r.Expires != nil {
		line("expires", "%s (%s; refreshed before then)", r.Expires.Format("2006-01-02 15:04:05 MST"), untilText(*r.Expires))
	} else {
		line("expires", "never (long-term keys)")
	}
	switch r.STS {
	case "ok":
		line("account", "%s", r.Account)
		line("arn", "%s", r.ARN)
	default:
		line("identity", "%s", r.STSDetail)
	}
	region := fmt.Sprintf("%s (from %s)", r.Region, r.RegionSource)
	if r.Endpoint == "" {
		region += "; buckets in other regions are found on first use"
	}
	line("region", "%s", region)
	if r.Endpoint == "" {
		line("endpoint", "AWS")
	} else {
		line("endpoint", "%s", r.Endpoint)
	}
	switch r.ListBuckets {
	case "allowed":
		line("list buckets", "allowed (%d %s)", *r.BucketCount, plural(*r.BucketCount, "bucket", "buckets"))
	case "denied":
		line("list buckets", "denied (AccessDenied; buckets are still reachable by name)")
	default:
		line("list buckets", "failed")
	}
	if r.OK {
		line("verdict", "the credentials work")
	} else {
		line("verdict", "the credentials do not work (see the message below)")
	}
}

func untilText(t time.Time) string {
	d := time.Until(t)
	if d <= 0 {
		return "expired"
	}
	if d > time.Minute {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	return "in " + d.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
