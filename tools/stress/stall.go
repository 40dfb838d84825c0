package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// diagnose collects, before anything is unmounted, what explains a stall:
// per mount the daemon's goroutine dump, its operations in flight (from its
// metrics server, which answers without the mount) and its status file
// (read with a time limit, since the mount may not answer); the kernel
// stack and wait channel of every blocked task on the host; the waiting
// count of every FUSE connection; and what each worker was doing. It writes
// them below WORK/stall and returns the path of the summary.
func diagnose(o options, mounts []*mount, r *runner, culprit *worker) string {
	dir := filepath.Join(o.work, "stall")
	_ = os.MkdirAll(dir, 0o755)
	var b strings.Builder
	fmt.Fprintf(&b, "stall at %s: worker %s, last progress %s ago, doing: %s\n\n",
		time.Now().UTC().Format(time.RFC3339), culprit.name, time.Since(time.Unix(0, culprit.last.Load())).Round(time.Second), culprit.doing())

	b.WriteString("== workers (seconds since progress, units, doing)\n")
	for _, w := range r.workers {
		fmt.Fprintf(&b, "%-8s %6.0fs %8d  %s\n", w.name, time.Since(time.Unix(0, w.last.Load())).Seconds(), w.units.Load(), w.doing())
		w.pids.Range(func(k, v any) bool {
			fmt.Fprintf(&b, "         pid %d: %s\n", k, v)
			return true
		})
	}

	for _, m := range mounts {
		fmt.Fprintf(&b, "\n== mount %s (daemon %d)\n", m.dir, m.pid)
		for _, f := range []struct{ path, file string }{
			{"/debug/ops", "ops-" + m.name + ".txt"},
			{"/debug/pprof/goroutine?debug=2", "goroutines-" + m.name + ".txt"},
			{"/metrics", "metrics-" + m.name + ".txt"},
		} {
			body, err := httpGet("http://" + m.metrics + f.path)
			if err != nil {
				fmt.Fprintf(&b, "%s: %v\n", f.path, err)
				continue
			}
			_ = os.WriteFile(filepath.Join(dir, f.file), body, 0o644)
			fmt.Fprintf(&b, "%s: %d bytes in %s\n", f.path, len(body), f.file)
			if f.path == "/debug/ops" {
				b.Write(body)
			}
		}
		fmt.Fprintf(&b, "daemon state: %s, wchan %s\n", procState(m.pid), readTrim(fmt.Sprintf("/proc/%d/wchan", m.pid)))
		status := readWithin(filepath.Join(m.dir, ".bucketfs", "status"), 5*time.Second)
		fmt.Fprintf(&b, "status file:\n%s\n", status)
	}

	b.WriteString("\n== FUSE connections (waiting requests)\n")
	mountFusectl()
	conns, _ := filepath.Glob("/sys/fs/fuse/connections/*/waiting")
	for _, c := range conns {
		fmt.Fprintf(&b, "%s: %s\n", c, readTrim(c))
	}

	b.WriteString("\n== blocked tasks (state D) and the workers' processes\n")
	pids := map[int]bool{os.Getpid(): true}
	for _, w := range r.workers {
		w.pids.Range(func(k, _ any) bool {
			pids[k.(int)] = true
			return true
		})
	}
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	sort.Strings(tasks)
	for _, t := range tasks {
		var pid int
		fmt.Sscanf(strings.Split(t, "/")[2], "%d", &pid)
		state := procStateOf(t)
		if state != "D" && !(pids[pid] && state != "R") {
			continue
		}
		fmt.Fprintf(&b, "-- %s (%s) state %s wchan %s\n%s\n", t, readTrim(filepath.Join("/proc", fmt.Sprint(pid), "comm")), state,
			readTrim(filepath.Join(t, "wchan")), readTrim(filepath.Join(t, "stack")))
	}

	for _, m := range mounts {
		fmt.Fprintf(&b, "\n== last lines of %s\n%s\n", m.log, tail(m.log, 40))
	}
	summary := filepath.Join(dir, "summary.txt")
	_ = os.WriteFile(summary, []byte(b.String()), 0o644)
	fmt.Println(b.String())
	return summary
}

func httpGet(url string) ([]byte, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// readWithin reads a file of a mount that may not answer.
func readWithin(path string, d time.Duration) string {
	done := make(chan string, 1)
	go func() { done <- readTrim(path) }()
	select {
	case s := <-done:
		return s
	case <-time.After(d):
		return fmt.Sprintf("(no answer within %v)", d)
	}
}

// procStateOf is the state letter in DIR/stat.
func procStateOf(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return "?"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

func procState(pid int) string { return procStateOf(fmt.Sprintf("/proc/%d", pid)) }

// mountFusectl mounts the FUSE control file system where the kernel lists
// connections, if it is not (root only; harmless when it is).
func mountFusectl() {
	if m, _ := filepath.Glob("/sys/fs/fuse/connections/*"); len(m) == 0 && os.Geteuid() == 0 {
		_ = syscall.Mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, "")
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
