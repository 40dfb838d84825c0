package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// One mount, many users (bucketfs mount --identity per-user): each user's
// files are staged in a directory of their own, DIR/UID, made by the daemon
// (root) and then handed to the user: owned by the user, mode 0700, and
// every staging file in it owned by the user, mode 0600. The mount's DIR is
// root's, 0711: a user reaches their own directory by name and cannot list
// the others. Why the user's and not root's: a file whose upload failed
// stays there for its writer to recover (the log names it), and staged
// bytes count against the user's own disk quota. The daemon does nothing
// in the user's directory that a name the user planted could turn against
// it: it only creates new names (O_EXCL, no links followed) and removes
// its own, and reads and writes through the descriptors it created. One
// bound (Config.Limit) holds for every user together, and each user's
// files are bounded by Config.UserLimit (half of Limit by default), so no
// user can fill the area for everyone (ErrUserFull, logged with the user).

// Owner is who the files of a user's area belong to.
type Owner struct {
	UID, GID uint32
	// Name names the user in the log (a full share, ErrUserFull).
	Name string
	// Ctx carries the user's identity (its values only: it is never
	// cancelled) to what is sent in the background for their files: the
	// start of a multipart upload and the parts sent while a file is
	// still being written.
	Ctx context.Context
}

type owner struct {
	set      bool
	uid, gid int
	name     string
	vals     context.Context
}

func (o owner) chown(f *os.File) error {
	if !o.set {
		return nil
	}
	return f.Chown(o.uid, o.gid)
}

// For returns the area of the user o: the same bound, its own directory
// (made on first use, and kept for the life of the mount).
func (a *Area) For(o Owner) (*Area, error) {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	if u := a.users[o.UID]; u != nil {
		return u, nil
	}
	if a.users == nil {
		// Users find their own directory by name; no one lists the
		// mount's.
		if err := os.Chmod(a.cfg.Dir, 0o711); err != nil {
			return nil, fmt.Errorf("staging directory: %w", err)
		}
		a.users = map[uint32]*Area{}
	}
	dir := filepath.Join(a.cfg.Dir, strconv.FormatUint(uint64(o.UID), 10))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("staging directory of uid %d: %w", o.UID, err)
	}
	// Mkdir made it (the mount's directory is root's alone): the name
	// is no link the user could have put there.
	if err := os.Lchown(dir, int(o.UID), int(o.GID)); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("staging directory of uid %d: %w", o.UID, err)
	}
	cfg := a.cfg
	cfg.Dir = dir
	u := &Area{cfg: cfg, b: a.b, ub: &budget{}, own: owner{set: true, uid: int(o.UID), gid: int(o.GID), name: o.Name, vals: o.Ctx}}
	a.users[o.UID] = u
	return u, nil
}

// closeUsers removes the users' directories that hold nothing.
func (a *Area) closeUsers() {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	for _, u := range a.users {
		_ = u.Close()
	}
}

// background is ctx for work in the background on the area's files: it
// carries the owner's identity, if the area has an owner.
func (a *Area) background(ctx context.Context) context.Context {
	if a.own.vals == nil {
		return ctx
	}
	return valuesCtx{Context: ctx, vals: a.own.vals}
}

// valuesCtx ends with its Context and takes its values from vals.
type valuesCtx struct {
	context.Context
	vals context.Context
}

func (v valuesCtx) Value(key any) any { return v.vals.Value(key) }

// RemoveEmpty removes dir, a mount's staging directory left by a daemon
// that is gone, and the users' directories in it, if nothing is left in
// them; it reports whether files are left (never-uploaded data).
func RemoveEmpty(dir string) (left bool) {
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if _, err := strconv.ParseUint(e.Name(), 10, 32); err == nil && e.IsDir() {
				_ = os.Remove(filepath.Join(dir, e.Name())) // only when empty
			}
		}
	}
	err := os.Remove(dir)
	return err != nil && (errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST))
}
