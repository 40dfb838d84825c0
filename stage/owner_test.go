package stage

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Users' areas: a 0700 directory and 0600 files of the user's own, one
// bound for all, links planted in a user's directory never followed.
func TestUserAreas(t *testing.T) {
	fx := newFixture(t, Config{Limit: 3 << 20, UserLimit: 3 << 20})
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

// TestUserLimit: one user's staging files are bounded by UserLimit (half
// the area by default), so the others keep room; a refusal is ENOSPC and
// ErrUserFull, logged once with the user; freed bytes count again.
func TestUserLimit(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		limit, user int64
		writes      []int64 // alice's files, each written whole, kept open
		refused     int     // index of the write refused for alice's share, -1: none
		bobRoom     int64   // what bob may still write at the end
	}{
		{name: "default is half the area", limit: 4 * mib, writes: []int64{mib, mib, mib}, refused: 2, bobRoom: 2 * mib},
		{name: "within her share", limit: 4 * mib, user: 3 * mib, writes: []int64{mib, 2 * mib}, refused: -1, bobRoom: mib},
		{name: "one file larger than her share", limit: 4 * mib, user: mib, writes: []int64{2 * mib}, refused: 0, bobRoom: 4 * mib},
		{name: "share above the area is the area", limit: 2 * mib, user: 8 * mib, writes: []int64{2 * mib}, refused: -1, bobRoom: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			fx := newFixture(t, Config{Limit: tt.limit, UserLimit: tt.user, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			defer fx.area.Close()
			aa, err := fx.area.For(Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Name: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			refused := -1
			var kept []*File
			for i, n := range tt.writes {
				f, err := aa.Create("a.csv")
				if err != nil {
					t.Fatal(err)
				}
				kept = append(kept, f)
				if _, err := f.WriteAt(make([]byte, n), 0); err != nil {
					if !errors.Is(err, ErrUserFull) || !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("write %d: %v, want ErrUserFull (ENOSPC)", i, err)
					}
					if refused < 0 {
						refused = i
					}
				}
			}
			if refused != tt.refused {
				t.Errorf("refused write %d, want %d", refused, tt.refused)
			}
			if got := strings.Count(log.String(), "share of the staging area is full"); got != min(1, max(0, tt.refused+1)) ||
				(got == 1 && !strings.Contains(log.String(), "user=alice")) {
				t.Errorf("log (%d lines naming the full share):\n%s", got, log.String())
			}
			// The rest of the area is the others' (the mount's own area
			// draws on the same bound): nothing of a refused write was
			// counted.
			if tt.bobRoom > 0 {
				g, err := fx.area.Create("b.csv")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := g.WriteAt(make([]byte, tt.bobRoom), 0); err != nil {
					t.Errorf("the others' %d bytes: %v", tt.bobRoom, err)
				}
				g.Remove()
			}
			// What alice frees counts again.
			for _, f := range kept {
				f.Remove()
			}
			if f, err := aa.Create("again.csv"); err != nil {
				t.Fatal(err)
			} else {
				if _, err := f.WriteAt(make([]byte, mib), 0); err != nil {
					t.Errorf("after her files went: %v", err)
				}
				f.Remove()
			}
		})
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
