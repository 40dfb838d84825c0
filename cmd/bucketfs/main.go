// Command bucketfs mounts Amazon S3 (or any S3-compatible server) as a
// directory tree, read-write unless --read-only: every bucket a directory,
// every object a file.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/bucketfs/bucketfs/identity"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const mainUsage = `bucketfs mounts Amazon S3 as a directory tree: every bucket a directory, every object a file.

Usage:
  bucketfs mount [flags] MOUNTPOINT                     mount every bucket the credentials can list
  bucketfs mount [flags] s3://BUCKET[/PREFIX] MOUNTPOINT mount one bucket, or a prefix of it
  bucketfs unmount MOUNTPOINT                           unmount
  bucketfs status [--json] MOUNTPOINT                   show a running mount's requests, bytes, cache and credentials
  bucketfs refresh PATH...                              make a mount forget cached listings and attributes of PATH
  bucketfs whoami [flags]                               show which credentials a mount would use and check them
  bucketfs csi --node-id NODE [flags]                   serve the Kubernetes CSI node plugin (docs/KUBERNETES.md)
  bucketfs version                                      print the version

Examples:
  bucketfs mount /mnt/s3 && ls /mnt/s3
  bucketfs mount s3://my-bucket/data /mnt/data
  Rscript -e 'head(read.csv("/mnt/s3/my-bucket/flights.csv"))'
  bucketfs status /mnt/s3
  bucketfs unmount /mnt/s3
  bucketfs whoami --credentials instance-role

Run "bucketfs COMMAND --help" for the flags of a command.
`

func main() {
	// mount(8) runs /sbin/mount.bucketfs, a symlink to this binary, for
	// /etc/fstab lines and "mount -t bucketfs" (fstab.go).
	if isMountHelper(os.Args[0]) {
		os.Exit(mountHelper(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "mount":
		err = mountCommand(args[1:], stdout, stderr)
	case "unmount", "umount":
		err = unmountCommand(args[1:], stdout)
	case "whoami":
		err = whoamiCommand(args[1:], stdout, stderr)
	case "status":
		err = statusCommand(args[1:], stdout)
	case "refresh":
		err = refreshCommand(args[1:], stdout)
	case "csi":
		err = csiCommand(args[1:], stdout, stderr)
	case identity.HelperCommand: // run by a per-user mount as a user (identity/helper.go)
		return identity.HelperMain(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "bucketfs %s\n", versionString())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, mainUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "bucketfs: unknown command %q: use mount, unmount, status, refresh, whoami, csi or version (bucketfs --help)\n", args[0])
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case isHelp(err):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "bucketfs %s: %s (see bucketfs %s --help)\n", args[0], ue.msg, args[0])
		return 2
	default:
		fmt.Fprintf(stderr, "bucketfs %s: %s\n", args[0], err)
		return 1
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}
