package namespace

import (
	"errors"
	"syscall"
)

// The control directory: ControlDir at the root of the mount (reserved
// there, Config.Reserved), holding files that describe the running mount
// or act on it. A directory rather than extended attributes, so the mount
// can keep those disabled: with them on, the kernel asks for security
// labels and ACLs on every file, which made "ls -lR" of 10,000 files
// eight times slower.
//
// Lookup finds it but no listing shows it, so find, du, rsync and R's
// list.files never descend into it. Neither it nor its files can be
// changed (ErrControl): EPERM, not EROFS, since the rest of a read-write
// mount is writable.

// ControlDir is the name of the control directory at the mount's root.
const ControlDir = ".bucketfs"

// The files of ControlDir: the status for people ("bucketfs status"
// prints the same) and as JSON, and RefreshFile (refresh.go).
const (
	StatusFile     = "status"
	StatusJSONFile = "status.json"
	RefreshFile    = "refresh"
)

// ErrControl refuses a change to the control directory or its files.
var ErrControl = errors.New("the control directory cannot be changed") // EPERM

// ControlFile is one file of ControlDir. A file that is read has its
// content made at each open (the status, as JSON if JSON) and shows size
// 0, as the files of /proc do; one that is written (Written) acts on each
// line (RefreshLines).
type ControlFile struct {
	Name    string
	Perm    uint32 // permission bits, for the mount's owner
	Written bool
	JSON    bool
}

// ControlFiles are the files of ControlDir, in name order.
var ControlFiles = []ControlFile{
	{Name: RefreshFile, Perm: 0o222, Written: true},
	{Name: StatusFile, Perm: 0o444},
	{Name: StatusJSONFile, Perm: 0o444, JSON: true},
}

// Control returns the file of ControlDir called name.
func Control(name string) (ControlFile, bool) {
	for _, c := range ControlFiles {
		if c.Name == name {
			return c, true
		}
	}
	return ControlFile{}, false
}

// ControlIno is the inode number of the control file name, or of
// ControlDir for "": no bucket's name gives it (bucket names hold no NUL).
func ControlIno(name string) uint64 { return Ino("\x00"+ControlDir, name, name == "") }

// Content is what an open of c reads, made now from status (the text
// and the JSON): nil for a file that is written.
func (c ControlFile) Content(status func() (text, json []byte)) []byte {
	if c.Written {
		return nil
	}
	text, js := status()
	if c.JSON {
		return js
	}
	return text
}

// Path is c's path from the mount's root.
func (c ControlFile) Path() string { return ControlDir + "/" + c.Name }

// Ino is c's inode number.
func (c ControlFile) Ino() uint64 { return ControlIno(c.Name) }

// Open checks the flags of an open(2) of c: a file that is read opens
// read-only, without O_TRUNC or O_APPEND; one that is written opens
// write-only (O_TRUNC and O_APPEND change nothing there).
func (c ControlFile) Open(flags uint32) error {
	mode := flags & syscall.O_ACCMODE
	if c.Written && mode == syscall.O_WRONLY ||
		!c.Written && mode == syscall.O_RDONLY && flags&(syscall.O_TRUNC|syscall.O_APPEND) == 0 {
		return nil
	}
	return ErrControl
}

// Setattr checks a setattr(2) of c that sets the size to size (sizeOnly:
// and nothing else). Only a truncation to 0 of a file that is written is
// allowed, and changes nothing: "echo PATH > refresh" asks it on a kernel
// without atomic O_TRUNC.
func (c ControlFile) Setattr(size uint64, sizeOnly bool) error {
	if c.Written && sizeOnly && size == 0 {
		return nil
	}
	return ErrControl
}

// controlDir returns the control directory: Config.Reserved at the root.
func (ns *NS) controlDir() *Dir { return &Dir{ns: ns, at: ControlDir + "/", control: true} }

// Perm is the permission bits d shows, where the mount's are perm: the
// control directory's are 0555.
func (d *Dir) Perm(perm uint32) uint32 {
	if d.control {
		return 0o555
	}
	return perm
}

// fixed says why d takes no change: ErrControl in the control directory,
// ErrNotSupported at the root of every bucket; nil elsewhere.
func (d *Dir) fixed() error {
	switch {
	case d.control:
		return ErrControl
	case d.bucket == "":
		return ErrNotSupported
	}
	return nil
}

// Special refuses what S3 cannot hold, a link, a symbolic link or a device
// node, with ErrNotSupported (ErrControl in the control directory).
func (d *Dir) Special() error {
	if d.control {
		return ErrControl
	}
	return ErrNotSupported
}
