package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bucketfs/bucketfs/metrics"
	"github.com/bucketfs/bucketfs/namespace"
)

const statusUsage = `Usage:
  bucketfs status [--json] MOUNTPOINT

Shows the key figures of a running mount: requests to S3 by operation
(with errors, retries and mean latency), bytes read and written, cache hits
and misses, the memory the cache holds, where the credentials come from and
their refreshes. The same figures as --metrics-addr serves, without it.
It reads MOUNTPOINT/.bucketfs/status.json, a file of the mount's control
directory (not listed, so find and ls do not see it); its text version
MOUNTPOINT/.bucketfs/status is what this prints:
  cat /mnt/s3/.bucketfs/status

Examples:
  bucketfs status /mnt/s3
  bucketfs status --json /mnt/s3 | jq .requests

Flags:
`

func statusCommand(args []string, stdout io.Writer) error {
	fs := newFlagSet("status")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if isHelp(err) {
			fmt.Fprint(stdout, statusUsage)
			printFlags(stdout, fs)
			return err
		}
		return usageError{err.Error()}
	}
	if len(pos) != 1 {
		return usagef("want exactly one MOUNTPOINT")
	}
	mp, fstype, err := mountAt(pos[0])
	if err != nil {
		return err
	}
	switch {
	case fstype == "":
		return fmt.Errorf("%s is not a bucketfs mount: mount it with bucketfs mount [s3://BUCKET] %s, or give the mount point itself", mp, mp)
	case fstype != "fuse.bucketfs":
		return fmt.Errorf("%s is a %s mount, not bucketfs", mp, fstype)
	case isDeadMount(mp):
		return deadMountError(mp)
	}
	doc, err := readStatus(mp, os.ReadFile)
	if err != nil {
		return err
	}
	var s metrics.Snapshot
	if err := json.Unmarshal(doc, &s); err != nil {
		return fmt.Errorf("%s is not readable (%v): is the bucketfs serving %s a matching version?", statusPath(mp), err, mp)
	}
	if *asJSON {
		_, err := stdout.Write(doc)
		return err
	}
	return s.WriteText(stdout)
}

func deadMountError(mp string) error {
	return fmt.Errorf("%s is not connected: the bucketfs process died; run bucketfs unmount %s and mount again", mp, mp)
}

// statusPath is the control file "bucketfs status" reads; cat shows the
// text version beside it (namespace.StatusFile).
func statusPath(mp string) string {
	return filepath.Join(mp, namespace.ControlDir, namespace.StatusJSONFile)
}

// readStatus reads the mount's status file with readFile, which is
// os.ReadFile except in tests.
func readStatus(mp string, readFile func(string) ([]byte, error)) ([]byte, error) {
	p := statusPath(mp)
	doc, err := readFile(p)
	switch {
	case err == nil:
		return doc, nil
	case errors.Is(err, fs.ErrNotExist):
		// The mount is bucketfs's (the caller checked): one from before
		// the control directory.
		return nil, fmt.Errorf("the bucketfs serving %s is older than this one and has no %s: unmount it and mount again with this bucketfs to see its figures", mp, p)
	case errors.Is(err, syscall.ENOTCONN), errors.Is(err, syscall.ECONNABORTED):
		return nil, deadMountError(mp)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("cannot read %s: permission denied: run it as the user who mounted it (other users need a mount with --allow-other)", p)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	return nil, fmt.Errorf("cannot read %s: %v", p, err)
}
