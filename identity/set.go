package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/bucketfs/bucketfs/store"
)

// ErrNoIdentity: the caller has no identity (no rule names the user or a
// group of theirs, or the user is unknown). It wraps store.ErrAccessDenied,
// so the request fails with EACCES.
var ErrNoIdentity = fmt.Errorf("no identity for this user: %w", store.ErrAccessDenied)

// Options configures a Set.
type Options struct {
	// Path is the rules file (DefaultPath when "").
	Path string
	// Host is the host's own configuration: its credentials sign
	// AssumeRole and serve the host source; its region and HTTP client
	// are every identity's.
	Host aws.Config
	// Caller, if set, finds the caller of a request whose context has
	// none from WithCaller (the FUSE request's own).
	Caller func(ctx context.Context) (Caller, bool)
	// Users looks users up; nil is the system's user database.
	Users func(uid uint32) (User, error)
	// Helper runs the profile helper (helper.go); nil runs this binary.
	Helper func(ctx context.Context, u User, profile string) (aws.Credentials, error)
	Logger *slog.Logger
	Now    func() time.Time
}

// User is what the user database says of a uid.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []string // names of the user's groups, primary included
	GIDs   []uint32
	Home   string
}

// Principal is one user's identity under one rule. Its Key names it for
// the caches (a new rule for the user is a new Principal with a new Key).
type Principal struct {
	Key string
	// Owner names the Linux user ("uid N") for what the mount keeps per
	// user (caller.go says why it is not Key).
	Owner string
	// Background carries the user as the caller (WithCaller), never
	// cancelled: for what is done for the user after their request (an
	// upload at a later close, parts sent in the background).
	Background  context.Context
	User        User
	Rule        Rule
	Credentials aws.CredentialsProvider // refreshed before expiry

	refreshes atomic.Int64
	failures  atomic.Int64
	expires   atomic.Int64 // Unix seconds of the credentials in use, 0: none or never
}

// Expires is when the credentials last retrieved expire (zero: never, or
// none yet).
func (p *Principal) Expires() time.Time {
	if s := p.expires.Load(); s > 0 {
		return time.Unix(s, 0)
	}
	return time.Time{}
}

// Source describes where the principal's credentials come from; no secret.
func (p *Principal) Source() string { return p.Rule.String() }

// userTTL is how long a user's name and groups are trusted.
const userTTL = time.Minute

// Set resolves callers to principals under the rules of one file. It is
// safe for concurrent use; Reload replaces the rules.
type Set struct {
	opts Options
	log  *slog.Logger

	mu         sync.RWMutex
	rules      []Rule
	gen        int
	byUID      map[uint32]resolved // per generation
	principals map[string]*Principal
	logged     map[string]bool // denials logged, per generation

	denied   atomic.Int64
	reloads  atomic.Int64
	resolves atomic.Int64
}

type resolved struct {
	p   *Principal
	err error
	at  time.Time
}

// New loads the rules (Load) and returns the Set.
func New(o Options) (*Set, error) {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Users == nil {
		o.Users = systemUser
	}
	if o.Helper == nil {
		o.Helper = runHelper(o.Host.Region)
	}
	rules, err := Load(o.Path)
	if err != nil {
		return nil, err
	}
	s := &Set{opts: o, log: o.Logger, principals: map[string]*Principal{}}
	s.install(rules)
	return s, nil
}

func (s *Set) install(rules []Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = rules
	s.gen++
	s.byUID = map[uint32]resolved{}
	s.logged = map[string]bool{}
}

// Path is the rules file.
func (s *Set) Path() string { return s.opts.Path }

// Reload reads the rules file again (on SIGHUP). On an error the rules in
// force stay. Requests resolved afterwards follow the new rules at once.
func (s *Set) Reload() error {
	rules, err := Load(s.opts.Path)
	if err != nil {
		return err
	}
	s.install(rules)
	s.reloads.Add(1)
	s.log.Info("identity rules reloaded", "file", s.opts.Path, "rules", len(rules))
	return nil
}

// Rules returns the rules in force.
func (s *Set) Rules() []Rule {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.rules)
}

// Scope is Resolve's principal key, for cache.Config.Scope.
func (s *Set) Scope(ctx context.Context) (string, error) {
	p, err := s.Resolve(ctx)
	if err != nil {
		return "", err
	}
	return p.Key, nil
}

// Within resolves the caller of ctx (Resolve) and returns ctx carrying
// the principal, so the rest of the request reads it from there (caller.go).
func (s *Set) Within(ctx context.Context) (context.Context, *Principal, error) {
	if p, ok := PrincipalFrom(ctx); ok {
		return ctx, p, nil
	}
	p, err := s.Resolve(ctx)
	if err != nil {
		return ctx, nil, err
	}
	return WithPrincipal(ctx, p), p, nil
}

// Resolve returns the principal of the caller of ctx (the one ctx carries,
// if Within put one there), or an error wrapping ErrNoIdentity (logged once
// per user and reason while the rules stay).
func (s *Set) Resolve(ctx context.Context) (*Principal, error) {
	if p, ok := PrincipalFrom(ctx); ok {
		return p, nil
	}
	c, ok := CallerFrom(ctx)
	if !ok && s.opts.Caller != nil {
		c, ok = s.opts.Caller(ctx)
	}
	if !ok {
		s.denied.Add(1)
		return nil, fmt.Errorf("request without a caller: %w", ErrNoIdentity)
	}
	now := s.opts.Now()
	s.mu.RLock()
	r, ok := s.byUID[c.UID]
	gen := s.gen
	s.mu.RUnlock()
	if ok && now.Sub(r.at) < userTTL {
		if r.err != nil {
			s.denied.Add(1)
		}
		return r.p, r.err
	}
	s.resolves.Add(1)
	p, err := s.resolve(c.UID)
	s.mu.Lock()
	if s.gen == gen {
		s.byUID[c.UID] = resolved{p: p, err: err, at: now}
	}
	s.mu.Unlock()
	return p, err
}

// ForUser resolves a user by name, as a request of theirs would be
// (bucketfs whoami --user).
func (s *Set) ForUser(name string) (*Principal, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("no such user %q", name)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	return s.resolve(uint32(uid))
}

func (s *Set) resolve(uid uint32) (*Principal, error) {
	u, err := s.opts.Users(uid)
	if err != nil {
		return nil, s.deny(strconv.FormatUint(uint64(uid), 10), uid, "the user database does not know the uid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rule, ok := match(s.rules, u)
	if !ok {
		return nil, s.denyLocked(u.Name, uid, "no rule in "+s.opts.Path+" names the user or a group of theirs")
	}
	sum := sha256.Sum256([]byte(rule.String()))
	key := fmt.Sprintf("%d:%s:%s", u.UID, u.Name, hex.EncodeToString(sum[:6]))
	if p := s.principals[key]; p != nil {
		return p, nil
	}
	p := &Principal{Key: key, Owner: "uid " + strconv.FormatUint(uint64(u.UID), 10),
		Background: WithCaller(context.Background(), Caller{UID: u.UID, GID: u.GID}), User: u, Rule: rule}
	p.Credentials = s.credentials(p)
	s.principals[key] = p
	s.log.Info("identity in use", "user", u.Name, "uid", uid, "source", rule.String(), "rule_line", rule.Line)
	return p, nil
}

func (s *Set) deny(name string, uid uint32, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.denyLocked(name, uid, why)
}

func (s *Set) denyLocked(name string, uid uint32, why string) error {
	s.denied.Add(1)
	if k := name + "\x00" + why; !s.logged[k] {
		s.logged[k] = true
		s.log.Warn("no identity: requests of this user fail with EACCES", "user", name, "uid", uid, "why", why)
	}
	return fmt.Errorf("user %s (uid %d): %s: %w", name, uid, why, ErrNoIdentity)
}

// match finds the rule for u: its own, else the first rule of one of its
// groups in file order.
func match(rules []Rule, u User) (Rule, bool) {
	for _, r := range rules {
		if !r.Group && r.Name == u.Name {
			return r, true
		}
	}
	for _, r := range rules {
		if r.Group && slices.Contains(u.Groups, r.Name) {
			return r, true
		}
	}
	return Rule{}, false
}

// systemUser looks uid up in the system's user database.
func systemUser(uid uint32) (User, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return User{}, err
	}
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	out := User{Name: u.Username, UID: uid, GID: uint32(gid), Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		ids = []string{u.Gid}
	}
	for _, id := range ids {
		g, err := user.LookupGroupId(id)
		n, _ := strconv.ParseUint(id, 10, 32)
		out.GIDs = append(out.GIDs, uint32(n))
		if err == nil {
			out.Groups = append(out.Groups, g.Name)
		}
	}
	return out, nil
}

// Stats is what status and metrics show: counts, never a secret.
type Stats struct {
	File            string
	Rules           int
	InUse           int            // principals made since start
	BySource        map[string]int // principals in use by source kind
	Refreshes       int64          // credential retrievals that succeeded
	RefreshFailures int64
	Denied          int64 // requests refused for want of an identity
	Reloads         int64
}

// Stats returns the counts.
func (s *Set) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{File: s.opts.Path, Rules: len(s.rules), InUse: len(s.principals), BySource: map[string]int{},
		Denied: s.denied.Load(), Reloads: s.reloads.Load()}
	for _, p := range s.principals {
		st.BySource[p.Rule.Source]++
		st.Refreshes += p.refreshes.Load()
		st.RefreshFailures += p.failures.Load()
	}
	return st
}

// errString is err's text, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
