// Package identity maps the Linux user behind each request of a shared
// mount (bucketfs mount --identity per-user) to that user's own AWS
// identity, from a root-owned file of rules:
//
//	# who            source        arguments
//	user  alice      role          arn:aws:iam::111122223333:role/alice
//	group analysts   role          arn:aws:iam::111122223333:role/analysts
//	user  bob        profile       [PROFILE]
//	group ds         web-identity  arn:aws:iam::111122223333:role/ds /run/bucketfs/tokens/%u
//	user  rstudio-connect host
//
// A user's own rule wins over rules of their groups; among group rules the
// first in the file wins. A user no rule names gets no identity: every
// request fails with EACCES. The sources:
//
//   - role: STS AssumeRole with the host's credentials, the role session
//     name and SourceIdentity set to the user name;
//   - profile: the user's own ~/.aws/config and ~/.aws/credentials (and SSO
//     cache, credential_process), read by a helper process that runs as the
//     user (helper.go), never by root;
//   - web-identity: STS AssumeRoleWithWebIdentity with a token file from a
//     path template (%u the user name, %U the uid), opened without
//     following links and only if owned by root or the user (token.go);
//   - host: the host's own credentials, only for users or groups named.
//
// Set resolves a request's caller to a Principal; Router is the store that
// signs each request with its caller's Principal.
package identity

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// DefaultPath is the rules file used without --identities.
const DefaultPath = "/etc/bucketfs/identities.conf"

// Source kinds.
const (
	SourceRole        = "role"
	SourceProfile     = "profile"
	SourceWebIdentity = "web-identity"
	SourceHost        = "host"
)

// Rule maps a user or a group to a source of credentials.
type Rule struct {
	Line    int    // in the file, for messages
	Group   bool   // Name is a group, else a user
	Name    string // user or group name
	Source  string // SourceRole, SourceProfile, SourceWebIdentity or SourceHost
	RoleARN string // role, web-identity
	Profile string // profile: "" for the user's default
	Token   string // web-identity: the token path template
}

// String names the rule without anything secret (there is nothing secret
// in a rule).
func (r Rule) String() string {
	who := "user " + r.Name
	if r.Group {
		who = "group " + r.Name
	}
	switch r.Source {
	case SourceRole:
		return who + " role " + r.RoleARN
	case SourceProfile:
		if r.Profile == "" {
			return who + " profile (default)"
		}
		return who + " profile " + r.Profile
	case SourceWebIdentity:
		return who + " web-identity " + r.RoleARN + " " + r.Token
	}
	return who + " " + r.Source
}

// Parse reads rules; errors name the file (name) and line.
func Parse(r io.Reader, name string) ([]Rule, error) {
	var rules []Rule
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s line %d: %s", name, n, fmt.Sprintf(format, a...))
		}
		if len(f) < 3 {
			return nil, bad("want \"user|group NAME SOURCE [ARGS]\", got %q", strings.Join(f, " "))
		}
		rule := Rule{Line: n, Name: f[1], Source: f[2]}
		switch f[0] {
		case "user":
		case "group":
			rule.Group = true
		default:
			return nil, bad("%q: a rule starts with user or group", f[0])
		}
		if !validName(rule.Name) {
			return nil, bad("%q is not a user or group name", rule.Name)
		}
		args := f[3:]
		switch rule.Source {
		case SourceRole:
			if len(args) != 1 || !isRoleARN(args[0]) {
				return nil, bad("role wants one role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
			}
			rule.RoleARN = args[0]
		case SourceProfile:
			if len(args) > 1 {
				return nil, bad("profile wants at most one profile name")
			}
			if len(args) == 1 {
				rule.Profile = args[0]
			}
		case SourceWebIdentity:
			if len(args) != 2 || !isRoleARN(args[0]) {
				return nil, bad("web-identity wants a role ARN and a token file path template, e.g. /run/bucketfs/tokens/%%u")
			}
			if !strings.HasPrefix(args[1], "/") || !strings.Contains(args[1], "%u") && !strings.Contains(args[1], "%U") {
				return nil, bad("the token path %q must be absolute and contain %%u (user name) or %%U (uid): one file per user", args[1])
			}
			rule.RoleARN, rule.Token = args[0], args[1]
		case SourceHost:
			if len(args) != 0 {
				return nil, bad("host takes no arguments")
			}
		default:
			return nil, bad("unknown source %q: use role, profile, web-identity or host", rule.Source)
		}
		k := f[0] + " " + rule.Name
		if prev, dup := seen[k]; dup {
			return nil, bad("%s is already mapped on line %d", k, prev)
		}
		seen[k] = n
		rules = append(rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return rules, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-$@", c)) {
			return false
		}
	}
	return true
}

func isRoleARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && parts[2] == "iam" && strings.HasPrefix(parts[5], "role/") && len(parts[5]) > len("role/")
}

// ErrUnsafeFile means the rules file could be changed by someone other
// than root.
var ErrUnsafeFile = errors.New("identity rules file is not safe")

// Load reads the rules file at path after checking that only root can
// change it: a regular file (not a link) owned by root and not writable by
// group or others, in a directory owned by root and not writable by group
// or others (unless sticky). Errors are one line naming the fix.
func Load(path string) ([]Rule, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%w: %s is a symbolic link: point --identities at the file itself", ErrUnsafeFile, path)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("identity rules file %s does not exist: create it (see docs/WORKBENCH.md) or pass --identities FILE", path)
	case err != nil:
		return nil, fmt.Errorf("identity rules file: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity rules file: %v", err)
	}
	if err := rootOnly(path, fi, false); err != nil {
		return nil, err
	}
	dir := path[:strings.LastIndexByte(path, '/')+1]
	if dir == "" {
		dir = "."
	}
	if di, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("identity rules file: %v", err)
	} else if err := rootOnly(dir, di, true); err != nil {
		return nil, err
	}
	return Parse(io.LimitReader(f, 1<<20), path)
}

// rootOnly checks that only root may change fi.
func rootOnly(path string, fi os.FileInfo, dir bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("identity rules file: cannot stat %s", path)
	}
	switch {
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file", ErrUnsafeFile, path)
	case st.Uid != 0:
		return fmt.Errorf("%w: %s is owned by uid %d, not root: chown root:root %s", ErrUnsafeFile, path, st.Uid, path)
	case fi.Mode().Perm()&0o022 != 0 && !(dir && fi.Mode()&os.ModeSticky != 0):
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): chmod go-w %s", ErrUnsafeFile, path, fi.Mode().Perm(), path)
	}
	return nil
}
