package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Variables for tests: where fusermount3 reads user_allow_other, and who we
// are.
var (
	fuseConfPath = "/etc/fuse.conf"
	geteuid      = os.Geteuid
)

// checkAllowOther fails early, with the fix, when a non-root user asks for
// --allow-other and /etc/fuse.conf does not permit it. fusermount3 would
// refuse too, but its reason goes to the daemon's stderr and the user
// would only see "fusermount exited with code 256".
func checkAllowOther(c mountConfig) error {
	if !c.AllowOther || geteuid() == 0 {
		return nil
	}
	if userAllowOther(fuseConfPath) {
		return nil
	}
	return fmt.Errorf("cannot mount %s with --allow-other: only root may, unless %s has a line user_allow_other (ask an administrator to add it, or mount without --allow-other)",
		c.MountPoint, fuseConfPath)
}

// userAllowOther reports whether the fuse.conf at path enables
// user_allow_other (a line of its own; "#" starts a comment).
func userAllowOther(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}
