package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/bucketfs/bucketfs/stage"
)

// sweepStaging tidies base/staging, the parent of every mount's staging
// directory: directories of mounts whose daemon is gone (killed, so it
// could not clean up) are removed when empty, and reported when they still
// hold files, which are data that was never uploaded.
func sweepStaging(base string, log *slog.Logger) {
	root := filepath.Join(base, "staging")
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || daemonAlive(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if stage.RemoveEmpty(dir) {
			log.Warn("an earlier mount left files it could not upload; they are kept here for you to recover or delete", "dir", dir)
		}
	}
}

// daemonAlive reports whether the process named at the end of a staging
// directory's name (MOUNT-TIME-PID) still runs. Names it cannot read count
// as alive: nothing is removed that might be in use.
func daemonAlive(name string) bool {
	i := strings.LastIndexByte(name, '-')
	pid, err := strconv.Atoi(name[i+1:])
	if i < 0 || err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return true
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
