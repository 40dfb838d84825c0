package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // Rule.String of each rule
		err      string   // part of the error
	}{
		{name: "every source", in: `
# comment
user  alice      role          arn:aws:iam::111122223333:role/alice   # trailing comment
group analysts   role          arn:aws:iam::111122223333:role/analysts
user  bob        profile
user  carol      profile       research
group ds         web-identity  arn:aws:iam::111122223333:role/ds /run/bucketfs/tokens/%u
user  rstudio-connect host
`, want: []string{
			"user alice role arn:aws:iam::111122223333:role/alice",
			"group analysts role arn:aws:iam::111122223333:role/analysts",
			"user bob profile (default)",
			"user carol profile research",
			"group ds web-identity arn:aws:iam::111122223333:role/ds /run/bucketfs/tokens/%u",
			"user rstudio-connect host",
		}},
		{name: "empty", in: "\n# nothing\n"},
		{name: "unknown kind", in: "uid 1000 host", err: "line 1: \"uid\": a rule starts with user or group"},
		{name: "unknown source", in: "user a keys", err: "unknown source \"keys\""},
		{name: "role without arn", in: "user alice role", err: "line 1: role wants one role ARN"},
		{name: "too short", in: "user alice", err: "line 1: want"},
		{name: "role with bad arn", in: "user alice role arn:aws:s3:::bucket", err: "role wants one role ARN"},
		{name: "token not per user", in: "user a web-identity arn:aws:iam::1:role/r /run/token", err: "must be absolute and contain %u"},
		{name: "token relative", in: "user a web-identity arn:aws:iam::1:role/r tokens/%u", err: "must be absolute"},
		{name: "host with args", in: "user a host now", err: "host takes no arguments"},
		{name: "duplicate", in: "user a host\nuser a profile", err: "line 2: user a is already mapped on line 1"},
		{name: "same name user and group", in: "user a host\ngroup a host", want: []string{"user a host", "group a host"}},
		{name: "bad name", in: "user a/b host", err: "is not a user or group name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := Parse(strings.NewReader(tc.in), "ids.conf")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "ids.conf") {
					t.Fatalf("err = %v, want one naming ids.conf and %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rules {
				got = append(got, r.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestMatch(t *testing.T) {
	rules, err := Parse(strings.NewReader(`
group staff  role arn:aws:iam::1:role/staff
group ds     role arn:aws:iam::1:role/ds
user  alice  profile
`), "f")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user   User
		want   string
		denied bool
	}{
		{User{Name: "alice", Groups: []string{"ds"}}, "user alice profile (default)", false},                      // own rule wins
		{User{Name: "bob", Groups: []string{"ds", "staff"}}, "group staff role arn:aws:iam::1:role/staff", false}, // first in file
		{User{Name: "carol", Groups: []string{"ds"}}, "group ds role arn:aws:iam::1:role/ds", false},
		{User{Name: "mallory", Groups: []string{"users"}}, "", true},
	} {
		r, ok := match(rules, tc.user)
		if ok == tc.denied || (ok && r.String() != tc.want) {
			t.Errorf("match(%s) = %q, %v; want %q", tc.user.Name, r.String(), ok, tc.want)
		}
	}
}

func TestSessionNameAndExpand(t *testing.T) {
	for in, want := range map[string]string{"alice": "alice", "a": "u-a", "j doe": "j-doe", "x/y": "x-y", strings.Repeat("n", 70): strings.Repeat("n", 64)} {
		if got := sessionName(in); got != want {
			t.Errorf("sessionName(%q) = %q, want %q", in, got, want)
		}
	}
	u := User{Name: "alice", UID: 1001}
	for in, want := range map[string]string{"/run/t/%u": "/run/t/alice", "/run/t/%U.jwt": "/run/t/1001.jwt", "/x/%%u/%u": "/x/%u/alice"} {
		if got := expand(in, u); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoadRefuses: the rules file must be root's alone.
func TestLoadRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns files")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "ids.conf")
	if err := os.WriteFile(good, []byte("user alice host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Fatalf("a root-owned 0644 file: %v", err)
	}
	for _, tc := range []struct {
		name  string
		setup func(p string) error
		want  string
	}{
		{"group-writable", func(p string) error { return os.Chmod(p, 0o664) }, "writable by group or others (mode 0664): chmod go-w"},
		{"other-writable", func(p string) error { return os.Chmod(p, 0o646) }, "writable by group or others"},
		{"not root's", func(p string) error { return os.Chown(p, 65534, 65534) }, "is owned by uid 65534, not root: chown root:root"},
		{"a symlink", func(p string) error { os.Remove(p); return os.Symlink(good, p) }, "is a symbolic link"},
		{"missing", func(p string) error { return os.Remove(p) }, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".conf")
			if err := os.WriteFile(p, []byte("user alice host\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(p); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Load = %v, want one line with %q", err, tc.want)
			}
		})
	}
	t.Run("directory writable by others", func(t *testing.T) {
		d := filepath.Join(dir, "open")
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
		p := filepath.Join(d, "ids.conf")
		if err := os.WriteFile(p, []byte("user alice host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("Load in a 0777 directory = %v", err)
		}
	})
}
