package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bucketfs/bucketfs/namespace"
)

const refreshUsage = `Usage:
  bucketfs refresh PATH...

Makes a running mount forget what it cached of PATH (a file or a
directory, and everything below it): listings and attributes, in bucketfs
and in the kernel, so that files another program or host wrote to the
bucket show at once instead of after --metadata-ttl. PATH need not exist
yet (a file a pipeline is about to write). It writes PATH, relative to the
mount point, to MOUNTPOINT/.bucketfs/refresh; from R, without a shell:
  writeLines("results/2024", "/mnt/s3/.bucketfs/refresh")

Examples:
  bucketfs refresh /mnt/s3/my-bucket/results
  bucketfs refresh ~/team/output.csv
`

func refreshCommand(args []string, stdout io.Writer) error {
	fs := newFlagSet("refresh")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if isHelp(err) {
			fmt.Fprint(stdout, refreshUsage)
			return err
		}
		return usageError{err.Error()}
	}
	if len(pos) == 0 {
		return usagef("want a PATH in a bucketfs mount")
	}
	for _, p := range pos {
		if err := refreshPath(p); err != nil {
			return err
		}
	}
	return nil
}

// refreshPath writes p, relative to the bucketfs mount it is in, to the
// mount's refresh file.
func refreshPath(p string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	// The mount: the nearest directory at or above p that is a mount
	// point (p itself may not exist yet).
	mp, fstype := abs, ""
	for {
		e, err := mountEntry(mp)
		if err != nil {
			return err
		}
		if e.fstype != "" {
			fstype = e.fstype
			break
		}
		if mp == "/" {
			break
		}
		mp = filepath.Dir(mp)
	}
	if fstype != "fuse.bucketfs" {
		return fmt.Errorf("%s is not in a bucketfs mount: give a path under a mount point of bucketfs mount", abs)
	}
	if isDeadMount(mp) {
		return deadMountError(mp)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(abs, mp), "/")
	ctl := filepath.Join(mp, namespace.ControlDir, namespace.RefreshFile)
	f, err := os.OpenFile(ctl, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(rel + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("the bucketfs serving %s is older than this one and has no %s: unmount it and mount again with this bucketfs", mp, ctl)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("%s: the mount refused the path %q (a mount of every bucket needs a bucket in it)", ctl, rel)
	}
	return fmt.Errorf("refresh %s: %v", abs, err)
}
