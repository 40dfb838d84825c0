package namespace

import (
	"syscall"
	"time"
)

// Show decides how the mount shows its files and directories: whose they
// are, their permission bits, their times.
type Show struct {
	// UID and GID own every file and directory; FileMode and DirMode are
	// their permission bits.
	UID, GID          uint32
	FileMode, DirMode uint32
	// Caller shows each request its caller as the owner, but for the root,
	// which all users share: on a per-user mount (bucketfs mount --identity
	// per-user) each user sees what their own identity may see, as theirs.
	// The kernel keeps attributes per inode, for every user alike: such a
	// mount keeps them for one clock tick (cmd/bucketfs/peruser.go), so
	// each stat is answered for its caller.
	Caller bool
	// MountTime is the time of every directory (S3 keeps none for
	// prefixes).
	MountTime time.Time
}

// Caller is who made a request: Known is false for the kernel's own
// requests, which may name none.
type Caller struct {
	UID, GID uint32
	Known    bool
}

// Stat is what the kernel is told of a file or directory.
type Stat struct {
	Mode     uint32 // kind (syscall.S_IFDIR or S_IFREG) and permission bits
	Ino      uint64
	Nlink    uint32
	Size     uint64
	Blocks   uint64 // of 512 bytes
	Blksize  uint32
	UID, GID uint32
	Time     time.Time // of the last change, status change and access
	// Timeout, if set, is how long the kernel may keep the attributes, in
	// place of the mount's (the metadata TTL).
	Timeout time.Duration
}

// RootTimeout is how long the kernel keeps the attributes of the mount's
// root: they never change, and each path walk checks its mode.
const RootTimeout = time.Hour

// File is what a file of attributes a shows to c.
func (s Show) File(a Attr, c Caller) Stat {
	st := Stat{Mode: syscall.S_IFREG | s.FileMode, Ino: a.Ino, Nlink: 1, Size: uint64(a.Size), Blksize: 1 << 20, Time: a.ModTime}
	st.Blocks = (st.Size + 511) / 512
	st.UID, st.GID = s.owner(c)
	return st
}

// Dir is what d shows to c: the mount's time, and a disk directory's size
// and links. The root is every user's: it shows the mount's owner, and
// the kernel may keep it RootTimeout.
func (s Show) Dir(d *Dir, c Caller) Stat {
	st := Stat{Mode: syscall.S_IFDIR | d.Perm(s.DirMode), Ino: d.Ino(), Nlink: 2, Size: 4096, Blksize: 4096, Time: s.MountTime}
	if d.root {
		c.Known = false
		st.Timeout = RootTimeout
	}
	st.UID, st.GID = s.owner(c)
	return st
}

// Control is what the control file cf shows to c: empty, and as of now
// (what an open reads is made at the open, whatever the size says).
func (s Show) Control(cf ControlFile, now time.Time, c Caller) Stat {
	st := s.File(Attr{Ino: cf.Ino(), ModTime: now}, c)
	st.Mode = syscall.S_IFREG | cf.Perm
	return st
}

// owner is who a request made by c is shown as the owner.
func (s Show) owner(c Caller) (uid, gid uint32) {
	if s.Caller && c.Known {
		return c.UID, c.GID
	}
	return s.UID, s.GID
}
