package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

const unmountUsage = `Usage:
  bucketfs unmount [--force] MOUNTPOINT

Unmounts a bucketfs mount. Works for the user who mounted it (through
fusermount3) and for root. A mount whose daemon died ("Transport endpoint is
not connected") is cleared too.

With --force, for a mount that is stuck: the mount's FUSE connection is
aborted first (/sys/fs/fuse/connections/N/abort), so every process blocked
on it gets an error ("Transport endpoint is not connected") instead of
waiting, and the mount point is then detached even if files are still open
under it. The daemon exits. Needs root, or the user who mounted it with the
fusectl file system mounted on /sys/fs/fuse/connections.

Examples:
  bucketfs unmount /mnt/s3
  sudo bucketfs unmount --force /mnt/s3

Flags:
`

func unmountCommand(args []string, stdout io.Writer) error {
	fs := newFlagSet("unmount")
	force := fs.Bool("force", false, "abort the mount's FUSE connection first, so processes stuck on it get an error, then detach it even if busy")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if isHelp(err) {
			fmt.Fprint(stdout, unmountUsage)
			printFlags(stdout, fs)
			return err
		}
		return usageError{err.Error()}
	}
	if len(pos) != 1 {
		return usagef("want exactly one MOUNTPOINT")
	}
	mp, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	e, err := mountEntry(mp)
	if err != nil {
		return err
	}
	if e.fstype == "" {
		return fmt.Errorf("%s is not mounted", mp)
	}
	if e.fstype != "fuse.bucketfs" {
		return fmt.Errorf("%s is a %s mount, not bucketfs: use umount", mp, e.fstype)
	}
	if *force {
		if err := abortConnection(mp, e.dev); err != nil {
			return err
		}
		return unmount(mp, true)
	}
	return unmount(mp, isDeadMount(mp))
}

// fusectlDir is where the kernel lists FUSE connections, one directory per
// mount named after its device minor number.
const fusectlDir = "/sys/fs/fuse/connections"

// abortConnection aborts the FUSE connection of the mount at mp, whose
// device is dev ("0:NN" in mountinfo): every request waiting on it fails
// with ENOTCONN at once, and the daemon's reads of /dev/fuse end. The
// fusectl file system is mounted first if root may and it is not.
func abortConnection(mp, dev string) error {
	_, minor, ok := strings.Cut(dev, ":")
	if !ok {
		return fmt.Errorf("cannot abort %s: its device %q in /proc/self/mountinfo is not MAJOR:MINOR", mp, dev)
	}
	abort := filepath.Join(fusectlDir, minor, "abort")
	if _, err := os.Stat(abort); errors.Is(err, os.ErrNotExist) && os.Geteuid() == 0 {
		// systemd mounts it at boot; containers often do not.
		_ = syscall.Mount("fusectl", fusectlDir, "fusectl", 0, "")
	}
	f, err := os.OpenFile(abort, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cannot abort the FUSE connection of %s (%v): run as root, or mount the fusectl file system first: mount -t fusectl none %s", mp, err, fusectlDir)
	}
	defer f.Close()
	if _, err := f.WriteString("1"); err != nil {
		return fmt.Errorf("cannot abort the FUSE connection of %s: write %s: %v", mp, abort, err)
	}
	return nil
}

// unmount detaches the FUSE mount at mp: directly as root, else through
// fusermount3. lazy detaches a dead mount even if something still holds it.
func unmount(mp string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = syscall.MNT_DETACH
		}
		err := syscall.Unmount(mp, flags)
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%s is busy: close the files open under it (lsof +f -- %s) and cd out of it, then try again", mp, mp)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %v", mp, err)
		}
		return nil
	}
	prog, err := exec.LookPath("fusermount3")
	if err != nil {
		if prog, err = exec.LookPath("fusermount"); err != nil {
			return fmt.Errorf("cannot unmount %s: fusermount3 is missing: install the fuse3 package", mp)
		}
	}
	argv := []string{"-u"}
	if lazy {
		argv = append(argv, "-z")
	}
	out, err := exec.Command(prog, append(argv, mp)...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "busy") {
			return fmt.Errorf("%s is busy: close the files open under it and cd out of it, then try again", mp)
		}
		return fmt.Errorf("unmount %s: %s", mp, msg)
	}
	return nil
}

// mountAt makes arg, a mount point given on the command line, absolute and
// returns the file system type mounted there ("" if none).
func mountAt(arg string) (mp, fstype string, err error) {
	if mp, err = filepath.Abs(arg); err != nil {
		return "", "", err
	}
	e, err := mountEntry(mp)
	return mp, e.fstype, err
}

// mountInfo is what mountinfo says of one mount.
type mountInfo struct {
	fstype string // "" when nothing is mounted there
	dev    string // "major:minor" of its file system
}

// mountEntry reads /proc/self/mountinfo for the mount visible at mp.
func mountEntry(mp string) (mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountInfo{}, err
	}
	defer f.Close()
	return parseMountinfo(f, mp)
}

// parseMountinfo finds the last mount at mp in a mountinfo listing: the
// last one is the visible one.
func parseMountinfo(r io.Reader, mp string) (mountInfo, error) {
	ms, err := mountinfo.GetMountsFromReader(r, func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != mp, false
	})
	if err != nil || len(ms) == 0 {
		return mountInfo{}, err
	}
	m := ms[len(ms)-1]
	return mountInfo{fstype: m.FSType, dev: strconv.Itoa(m.Major) + ":" + strconv.Itoa(m.Minor)}, nil
}

// isDeadMount reports whether mp is a FUSE mount whose daemon is gone
// ("Transport endpoint is not connected").
func isDeadMount(mp string) bool {
	var st syscall.Statfs_t
	err := syscall.Statfs(mp, &st)
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}
