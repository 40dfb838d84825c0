package stage

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Users' areas: a 0700 directory and 0600 files of the user's own, one
// bound for all, links planted in a user's directory never followed.
func TestUserAreas(t *testing.T) {
	fx := newFixture(t, Config{Limit: 3 << 20})
	uid := func(n uint32) uint32 { // other users' only when root may chown
		if os.Geteuid() != 0 {
			return uint32(os.Getuid())
		}
		return n
	}
	alice, bob := Owner{UID: uid(61001), GID: uid(61001)}, Owner{UID: uid(61002), GID: uid(61002)}
	aa, err := fx.area.For(alice)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := fx.area.For(alice); again != aa {
		t.Error("a second For of the same user made another area")
	}
	ab, err := fx.area.For(bob)
	if err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	f, err := aa.Create("x.csv")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		mode os.FileMode
		uid  uint32
	}{
		{fx.area.Dir(), os.ModeDir | 0o711, uint32(os.Getuid())},
		{aa.Dir(), os.ModeDir | 0o700, alice.UID},
		{f.Path(), 0o600, alice.UID},
	}
	for _, tc := range tests {
		fi, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != tc.mode || st.Uid != tc.uid {
			t.Errorf("%s: %v uid %d, want %v uid %d", tc.path, fi.Mode(), st.Uid, tc.mode, tc.uid)
		}
	}
	if filepath.Dir(aa.Dir()) != fx.area.Dir() || filepath.Base(aa.Dir()) != strconv.FormatUint(uint64(alice.UID), 10) {
		t.Errorf("alice's directory %s", aa.Dir())
	}

	// One bound for every user.
	if _, err := f.WriteAt(make([]byte, 2<<20), 0); err != nil {
		t.Fatal(err)
	}
	if ab != nil {
		g, err := ab.Create("y.csv")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.WriteAt(make([]byte, 2<<20), 0); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("bob's write past the shared bound: %v, want ENOSPC", err)
		}
		g.Remove()
	}

	// A name the user put where the next file goes is refused, not
	// followed.
	target := filepath.Join(t.TempDir(), "root-only")
	next := filepath.Join(aa.Dir(), strconv.FormatUint(aa.seq.Load()+1, 10)+"-z.csv")
	if err := os.Symlink(target, next); err != nil {
		t.Fatal(err)
	}
	if _, err := aa.Create("z.csv"); err == nil {
		t.Error("Create followed a planted link")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the link's target was made: %v", err)
	}
	os.Remove(next)

	// Close removes the users' directories that hold nothing.
	f.Remove()
	if err := fx.area.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fx.area.Dir()); !os.IsNotExist(err) {
		t.Errorf("the staging directory stays after close: %v", err)
	}
}

func TestRemoveEmpty(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // under the mount's staging directory
		left  bool
	}{
		{name: "empty"},
		{name: "empty user directories", files: []string{"1000/", "1001/"}},
		{name: "a user's file left", files: []string{"1000/", "1000/7-out.csv"}, left: true},
		{name: "a file left", files: []string{"3-x"}, left: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m-1")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				var err error
				if f[len(f)-1] == '/' {
					err = os.Mkdir(p, 0o700)
				} else {
					err = os.WriteFile(p, []byte("x"), 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			left := RemoveEmpty(dir)
			_, err := os.Stat(dir)
			if left != tc.left || os.IsNotExist(err) == tc.left {
				t.Errorf("RemoveEmpty = %v (stat: %v), want %v", left, err, tc.left)
			}
		})
	}
}
