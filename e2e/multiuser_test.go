package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const otherUser = "bucketfs-other"

// localUser is a local account the tests run commands as.
type localUser struct {
	name     string
	uid, gid int
}

// needUsers returns the named local users, creating missing ones. It skips
// the test unless it runs as root (it runs commands as those users).
func needUsers(t *testing.T, names ...string) []localUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs commands as other local users (scripts/test runs as root in CI)")
	}
	var out []localUser
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			b, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
				"--shell", "/usr/sbin/nologin", name).CombinedOutput()
			if err != nil {
				t.Fatalf("useradd %s: %v: %s", name, err, b)
			}
			if u, err = user.Lookup(name); err != nil {
				t.Fatal(err)
			}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		out = append(out, localUser{name: name, uid: uid, gid: gid})
	}
	return out
}

// runAs runs a command as user u (root's own commands when u is "").
func (s *suite) runAs(t *testing.T, u string, home string, args ...string) result {
	t.Helper()
	if u != "" {
		args = append([]string{"runuser", "-u", u, "--"}, args...)
	}
	var env []string
	if home != "" {
		// runuser keeps the caller's environment; the user's must not
		// point at root's files.
		env = []string{"HOME=" + home}
	}
	return s.exec(t, time.Minute, env, args[0], args[1:]...)
}

// userHome is what a non-root user needs to mount: a directory of theirs
// with a copy of the binary and a mount point.
type userHome struct {
	s            *suite
	u            localUser
	dir, mp, bin string
}

func newUserHome(t *testing.T, s *suite, u localUser) *userHome {
	t.Helper()
	h := &userHome{s: s, u: u, dir: sharedDir(t, s, "user")}
	h.mp = filepath.Join(h.dir, "mnt")
	h.bin = filepath.Join(h.dir, "bucketfs")
	copyFile(t, s.bin, h.bin, 0o755)
	if err := os.Mkdir(h.mp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{h.dir, h.mp} {
		if err := os.Chown(p, u.uid, u.gid); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *userHome) run(t *testing.T, args ...string) result {
	t.Helper()
	return h.s.runAs(t, h.u.name, h.dir, args...)
}

func denied(r result) bool {
	return r.err != nil && strings.Contains(r.stderr, "Permission denied")
}

// TestMultiUser: on a shared host only the mounting user can use a mount
// unless --allow-other; with it, the kernel grants or refuses other users
// by --uid/--gid/--file-mode/--dir-mode (default_permissions); a non-root
// user may mount with --allow-other only when /etc/fuse.conf allows it.
func TestMultiUser(t *testing.T) {
	s := need(t)
	us := needUsers(t, nonRootUser, otherUser)
	owner, other := us[0], us[1]
	bkt := s.bucket("multiuser")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: {"data/f.csv": []byte("x,y\n1,2\n")}})
	src := "s3://" + bkt
	dir := sharedDir(t, s, "mu")
	newMP := func(name string) string {
		mp := filepath.Join(dir, name)
		if err := os.Mkdir(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		return mp
	}
	file := func(mp string) string { return filepath.Join(mp, "data", "f.csv") }

	t.Run("without allow-other", func(t *testing.T) {
		mp := newMP("plain")
		s.mountAt(t, mp, src)
		if got := s.must(t, time.Minute, "cat", file(mp)); got != "x,y\n1,2\n" {
			t.Errorf("the mounter reads %q", got)
		}
		if r := s.runAs(t, other.name, "", "stat", dir); r.err != nil {
			t.Fatalf("%s cannot even stat the parent directory: %v %s", other.name, r.err, r.stderr)
		}
		for _, u := range []localUser{owner, other} {
			for _, cmd := range [][]string{{"ls", mp}, {"cat", file(mp)}, {"stat", filepath.Join(mp, "data")}} {
				if r := s.runAs(t, u.name, "", cmd...); !denied(r) {
					t.Errorf("%s as %s: %v %q, want Permission denied", strings.Join(cmd, " "), u.name, r.err, r.stderr)
				}
			}
		}
	})

	t.Run("allow-other owner and modes", func(t *testing.T) {
		mp := newMP("modes")
		s.mountAt(t, mp, src, "--allow-other", "--uid", strconv.Itoa(owner.uid), "--gid", strconv.Itoa(owner.gid),
			"--file-mode", "0440", "--dir-mode", "0550")
		r := s.runAs(t, owner.name, "", "cat", file(mp))
		if r.err != nil || r.stdout != "x,y\n1,2\n" {
			t.Errorf("cat as the owner %s = %q, %v %s", owner.name, r.stdout, r.err, r.stderr)
		}
		r = s.runAs(t, owner.name, "", "stat", "-c", "%u %g %a", file(mp), filepath.Join(mp, "data"))
		want := fmt.Sprintf("%d %d 440\n%d %d 550\n", owner.uid, owner.gid, owner.uid, owner.gid)
		if r.err != nil || r.stdout != want {
			t.Errorf("stat as the owner = %q, %v; want %q", r.stdout, r.err, want)
		}
		for _, cmd := range [][]string{{"ls", mp}, {"cat", file(mp)}} {
			if r := s.runAs(t, other.name, "", cmd...); !denied(r) {
				t.Errorf("%s as %s (modes 0440/0550, not the owner): %v %q, want Permission denied",
					strings.Join(cmd, " "), other.name, r.err, r.stderr)
			}
		}
	})

	t.Run("allow-other readable by all", func(t *testing.T) {
		mp := newMP("open")
		s.mountAt(t, mp, src, "--allow-other")
		for _, u := range []localUser{owner, other} {
			if r := s.runAs(t, u.name, "", "cat", file(mp)); r.err != nil || r.stdout != "x,y\n1,2\n" {
				t.Errorf("cat as %s = %q, %v %s", u.name, r.stdout, r.err, r.stderr)
			}
		}
	})

	t.Run("non-root mounter", func(t *testing.T) {
		h := newUserHome(t, s, owner)
		setConf := fuseConf(t)
		setConf(false)
		mountArgs := append([]string{h.bin, "mount"}, s.mountOpts(filepath.Join(h.dir, "bucketfs.log"))...)
		mountArgs = append(mountArgs, "--allow-other", src, h.mp)
		r := h.run(t, mountArgs...)
		if r.err == nil || !strings.Contains(r.stderr, "user_allow_other") {
			t.Errorf("mount --allow-other by %s without user_allow_other: %v %q, want an error naming user_allow_other",
				owner.name, r.err, r.stderr)
		}
		if isMounted(t, h.mp) {
			t.Fatalf("a failed mount left %s mounted", h.mp)
		}
		setConf(true)
		if r := h.run(t, mountArgs...); r.err != nil {
			t.Fatalf("mount --allow-other by %s with user_allow_other: %v\n%s", owner.name, r.err, clip(r.stderr))
		}
		if line := mountLine(t, h.mp); !strings.Contains(line, fmt.Sprintf("user_id=%d,", owner.uid)) || !strings.Contains(line, "allow_other") {
			t.Errorf("mount of %s: %s; want user_id=%d and allow_other", h.mp, line, owner.uid)
		}
		if r := s.runAs(t, other.name, "", "cat", file(h.mp)); r.err != nil || r.stdout != "x,y\n1,2\n" {
			t.Errorf("cat as %s on %s's mount = %q, %v %s", other.name, owner.name, r.stdout, r.err, r.stderr)
		}
		if r := h.run(t, h.bin, "unmount", h.mp); r.err != nil {
			t.Fatalf("unmount as %s: %v\n%s", owner.name, r.err, clip(r.stderr))
		}
		if !waitUnmounted(t, h.mp, 5*time.Second) {
			t.Errorf("%s still mounted after unmount as %s", h.mp, owner.name)
		}
	})

	t.Run("help and docs name the credentials", func(t *testing.T) {
		r := s.exec(t, time.Minute, nil, s.bin, "mount", "--help")
		if !strings.Contains(r.stdout, "signed with the mounter's credentials") {
			t.Errorf("bucketfs mount --help does not say that requests are signed with the mounter's credentials:\n%s", clip(r.stdout))
		}
		for _, doc := range []string{"../README.md", "../docs/SEMANTICS.md"} {
			b, err := os.ReadFile(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "mounter's credentials") {
				t.Errorf("%s does not say that every request uses the mounter's credentials", doc)
			}
		}
	})
}

// fuseConf saves /etc/fuse.conf, restores it when the test ends, and
// returns a function that makes it allow (or not) non-root users to mount
// with allow_other.
func fuseConf(t *testing.T) (set func(allow bool)) {
	t.Helper()
	const path = "/etc/fuse.conf"
	orig, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if existed {
			os.WriteFile(path, orig, 0o644)
		} else {
			os.Remove(path)
		}
	})
	var keep []string
	for _, l := range strings.Split(string(orig), "\n") {
		if strings.TrimSpace(l) != "user_allow_other" {
			keep = append(keep, l)
		}
	}
	base := strings.TrimRight(strings.Join(keep, "\n"), "\n") + "\n"
	return func(allow bool) {
		text := base
		if allow {
			text += "user_allow_other\n"
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
