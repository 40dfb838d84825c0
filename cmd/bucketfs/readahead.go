package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// kernelReadAheadKiB is the read-ahead asked of the kernel for the mount.
// A FUSE mount starts with the kernel's default of 128 KiB, whatever the
// daemon offers at INIT (the kernel takes the smaller), so a sequential
// reader's pages arrive in 64 KiB FUSE reads: 16,384 round trips through
// the daemon per GiB. At 4 MiB the kernel sends 1 MiB reads (the largest
// the mount negotiates) and keeps several in flight; on the bench bed a
// cold sequential read went from ~570 to ~700 MiB/s with 20% less daemon
// CPU. Random reads are unaffected: the kernel reads ahead only for
// sequential access.
const kernelReadAheadKiB = 4096

// bdiDir is where the kernel exposes the backing device of each file
// system by "major:minor"; a variable for tests.
var bdiDir = "/sys/class/bdi"

// raiseKernelReadAhead sets the read-ahead of the file system mounted at
// mp to kernelReadAheadKiB, unless it is already at least that. Only root
// may: for anyone else it says once, at debug level, what root can run.
func raiseKernelReadAhead(mp string, log *slog.Logger) {
	// mountinfo names mount points with symbolic links resolved. Only the
	// parent is resolved: the mount point itself is this daemon's root.
	if dir, err := filepath.EvalSymlinks(filepath.Dir(mp)); err == nil {
		mp = filepath.Join(dir, filepath.Base(mp))
	}
	e, err := mountEntry(mp)
	if err != nil || e.dev == "" {
		log.Debug("kernel read-ahead left as it is: mount not found in mountinfo", "mountpoint", mp, "err", err)
		return
	}
	if err := setReadAhead(e.dev, kernelReadAheadKiB); err != nil {
		log.Debug("kernel read-ahead left at the default (sequential reads are faster with more); as root: echo "+
			strconv.Itoa(kernelReadAheadKiB)+" > "+filepath.Join(bdiDir, e.dev, "read_ahead_kb"), "err", err)
		return
	}
	log.Debug("kernel read-ahead set", "kib", kernelReadAheadKiB, "bdi", e.dev)
}

// setReadAhead raises dev's read_ahead_kb to kib (never lowers it).
func setReadAhead(dev string, kib int) error {
	if dev == "" || strings.ContainsAny(dev, "/.") {
		return fmt.Errorf("bad device %q", dev)
	}
	p := filepath.Join(bdiDir, dev, "read_ahead_kb")
	cur, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(cur))); err == nil && n >= kib {
		return nil
	}
	return os.WriteFile(p, []byte(strconv.Itoa(kib)+"\n"), 0)
}
