package namespace

import (
	"syscall"
	"testing"
	"time"
)

// What a file, a directory, the root and a control file show, on a mount
// of one owner and on a per-user mount, to a caller and to the kernel.
func TestShow(t *testing.T) {
	mountTime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	modTime := mountTime.Add(-time.Hour)
	one := Show{UID: 1000, GID: 100, FileMode: 0o644, DirMode: 0o755, MountTime: mountTime}
	perUser := one
	perUser.Caller = true
	ns := New(nil, Config{Reserved: ControlDir})
	root, dir := ns.Root("b", ""), ns.Dir("b", "d/")
	user := Caller{UID: 2001, GID: 3000, Known: true}
	file := Attr{Ino: 42, Size: 1025, ModTime: modTime}
	status := ControlFiles[0]
	for _, tc := range []struct {
		name string
		st   Stat
		want Stat
	}{
		{"a file shows the mount's owner", one.File(file, user),
			Stat{Mode: syscall.S_IFREG | 0o644, Ino: 42, Nlink: 1, Size: 1025, Blocks: 3, Blksize: 1 << 20, UID: 1000, GID: 100, Time: modTime}},
		{"per-user: a file shows its caller", perUser.File(file, user),
			Stat{Mode: syscall.S_IFREG | 0o644, Ino: 42, Nlink: 1, Size: 1025, Blocks: 3, Blksize: 1 << 20, UID: 2001, GID: 3000, Time: modTime}},
		{"per-user: root as root", perUser.File(file, Caller{Known: true}),
			Stat{Mode: syscall.S_IFREG | 0o644, Ino: 42, Nlink: 1, Size: 1025, Blocks: 3, Blksize: 1 << 20, Time: modTime}},
		{"per-user: no caller shows the mount's owner", perUser.File(file, Caller{}),
			Stat{Mode: syscall.S_IFREG | 0o644, Ino: 42, Nlink: 1, Size: 1025, Blocks: 3, Blksize: 1 << 20, UID: 1000, GID: 100, Time: modTime}},
		{"a directory: the mount's time, a disk directory's size", perUser.Dir(dir, user),
			Stat{Mode: syscall.S_IFDIR | 0o755, Ino: dir.Ino(), Nlink: 2, Size: 4096, Blksize: 4096, UID: 2001, GID: 3000, Time: mountTime}},
		{"per-user: the root is the mount owner's, kept an hour", perUser.Dir(root, user),
			Stat{Mode: syscall.S_IFDIR | 0o755, Ino: root.Ino(), Nlink: 2, Size: 4096, Blksize: 4096, UID: 1000, GID: 100, Time: mountTime, Timeout: RootTimeout}},
		{"the control directory is read-only", one.Dir(ns.controlDir(), user),
			Stat{Mode: syscall.S_IFDIR | 0o555, Ino: ControlIno(""), Nlink: 2, Size: 4096, Blksize: 4096, UID: 1000, GID: 100, Time: mountTime}},
		{"a control file: empty, as of now", perUser.Control(status, modTime, user),
			Stat{Mode: syscall.S_IFREG | status.Perm, Ino: status.Ino(), Nlink: 1, Blksize: 1 << 20, UID: 2001, GID: 3000, Time: modTime}},
	} {
		if tc.st != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, tc.st, tc.want)
		}
	}
}
