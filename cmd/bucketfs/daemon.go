package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// notifyEnv tells a re-executed bucketfs that fd 3 is a pipe on which to
// say "ok" once the mount is ready, or the one-line reason it failed.
const notifyEnv = "BUCKETFS_NOTIFY_FD"

// startDaemon re-runs this program as "bucketfs mount --foreground" with
// the mount command's arguments args, detached from the terminal, and
// waits until it reports that the mount is ready (exit 0) or why it failed.
func startDaemon(args []string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the bucketfs executable to start the mount daemon: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()

	cmd := exec.Command(exe, append([]string{"mount", "--foreground"}, args...)...)
	cmd.Env = append(os.Environ(), notifyEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The daemon starts in our directory so relative paths (mount point,
	// --log-file) mean the same; serve moves it to "/" once resolved.
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("cannot start the mount daemon: %v", err)
	}
	w.Close()

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	br := bufio.NewReader(r)
	var rerr error
	for {
		var line string
		line, rerr = br.ReadString('\n')
		line = strings.TrimSpace(line)
		switch {
		case line == "ok":
			return nil
		case strings.HasPrefix(line, "error "):
			return errors.New(strings.TrimPrefix(line, "error "))
		case strings.HasPrefix(line, "warn "):
			fmt.Fprintln(stderr, "bucketfs mount: warning: "+strings.TrimPrefix(line, "warn "))
			continue
		}
		break
	}
	// The daemon closed the pipe without a word: it crashed.
	select {
	case werr := <-exited:
		return fmt.Errorf("the mount daemon exited before the mount was ready (%v, %v): run with --foreground to see why", werr, rerr)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("the mount daemon stopped answering before the mount was ready: run with --foreground to see why")
	}
}

// notifier is the daemon's end of the readiness pipe.
type notifier struct{ f *os.File }

func openNotify() *notifier {
	if os.Getenv(notifyEnv) != "3" {
		return nil
	}
	os.Unsetenv(notifyEnv)
	return &notifier{f: os.NewFile(3, "notify")}
}

// warn passes on a warning for the user, printed by the waiting parent.
func (n *notifier) warn(msg string) {
	fmt.Fprintln(n.f, "warn "+strings.ReplaceAll(msg, "\n", " "))
}

func (n *notifier) ready() {
	fmt.Fprintln(n.f, "ok")
	n.f.Close()
}

// fail reports err (nil means the daemon is ending without a mount and
// without an error, which the parent treats as a crash).
func (n *notifier) fail(err error) {
	if err != nil {
		fmt.Fprintln(n.f, "error "+strings.ReplaceAll(err.Error(), "\n", " "))
	}
	n.f.Close()
}
