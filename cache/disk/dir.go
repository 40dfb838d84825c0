package disk

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// prepare creates dir (0700, parents too) or checks the one there: a
// directory owned by this user that nobody else may write into. Blocks in
// it are served as file content, so a directory someone else can write is
// a way to make the mount serve their bytes.
func prepare(dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("disk cache %s is not a directory: choose a directory for --disk-cache", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("disk cache directory %s: %v: choose another --disk-cache", dir, errors.Unwrap(err))
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("disk cache directory %s: %v", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("disk cache %s is not a directory: choose a directory for --disk-cache", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("disk cache directory %s: cannot tell its owner", dir)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("disk cache directory %s belongs to uid %d, not to you (uid %d): choose a directory of your own for --disk-cache", dir, st.Uid, uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("disk cache directory %s is writable by others (mode %04o): chmod 700 %s, or choose another --disk-cache", dir, perm, dir)
	}
	return nil
}

// lockDir takes the directory for this mount alone (an flock on DIR/lock,
// released by the kernel when the process ends, kill -9 included). Two
// mounts sharing one directory would each bound and evict it blind to the
// other's files, so the second is refused. A holder that is closing (its
// mount is gone, it writes its last queued blocks: markClosing) is waited
// for, up to wait, so a restart right after an unmount is not refused.
func lockDir(dir string, wait time.Duration, log *slog.Logger) (*os.File, error) {
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("disk cache directory %s: %v", dir, errors.Unwrap(err))
	}
	deadline, logged := time.Now().Add(wait), false
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			break
		}
		b := make([]byte, 64)
		n, _ := f.ReadAt(b, 0)
		pid, state, _ := strings.Cut(strings.TrimSpace(string(b[:n])), " ")
		if state != "closing" || time.Now().After(deadline) {
			f.Close()
			who := ""
			if pid != "" {
				who = " (pid " + pid + ")"
			}
			return nil, fmt.Errorf("disk cache directory %s is in use by another bucketfs mount%s: give each mount its own --disk-cache directory", dir, who)
		}
		if !logged {
			log.Info("waiting for the previous mount's daemon to finish writing the disk cache", "dir", dir, "pid", pid)
			logged = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("disk cache directory %s: cannot lock it: %v", dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// markClosing says in the lock file that its holder is closing: a new
// mount waits for the lock instead of being refused.
func markClosing(f *os.File) {
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+" closing\n"), 0)
}

// networkFS names the network or user-space file system under dir, or ""
// for a local one. Its magic numbers are those of statfs(2).
func networkFS(dir string) string {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return ""
	}
	switch uint32(s.Type) {
	case 0x6969:
		return "nfs"
	case 0xFF534D42:
		return "cifs"
	case 0xFE534D42:
		return "smb2"
	case 0x517B:
		return "smb"
	case 0x65735546:
		return "fuse (sshfs or another user-space file system)"
	case 0x00C36400:
		return "ceph"
	case 0x5346414F:
		return "afs"
	case 0x01021997:
		return "9p"
	case 0x0BD00BD0:
		return "lustre"
	case 0x47504653:
		return "gpfs"
	case 0x01161970:
		return "gfs2"
	case 0x7461636F:
		return "ocfs2"
	case 0x73757245:
		return "coda"
	}
	return ""
}

// freeBytes is the space left for this user on the file system of dir.
func freeBytes(dir string) (int64, bool) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, false
	}
	return int64(s.Bavail) * int64(s.Bsize), true
}
