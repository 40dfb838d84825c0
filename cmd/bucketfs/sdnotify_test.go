package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify listens like systemd does: a unix datagram socket at path
// (or an abstract one, "@name").
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestSdNotify(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		socket   func(t *testing.T) (addr string, conn *net.UnixConn)
		wantSent bool
		wantErr  bool
	}{
		{name: "path socket", wantSent: true, socket: func(t *testing.T) (string, *net.UnixConn) {
			p := filepath.Join(dir, "notify")
			return p, listenNotify(t, p)
		}},
		{name: "abstract socket", wantSent: true, socket: func(t *testing.T) (string, *net.UnixConn) {
			a := fmt.Sprintf("@bucketfs-test-%d-%d", os.Getpid(), time.Now().UnixNano())
			return a, listenNotify(t, a)
		}},
		{name: "no manager", socket: func(t *testing.T) (string, *net.UnixConn) { return "", nil }},
		{name: "socket gone", wantErr: true, socket: func(t *testing.T) (string, *net.UnixConn) {
			return filepath.Join(dir, "missing"), nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, conn := tc.socket(t)
			t.Setenv(notifySocketEnv, addr)
			sent, err := sdNotify("READY=1")
			if sent != tc.wantSent || (err != nil) != tc.wantErr {
				t.Fatalf("sdNotify = %v, %v; want sent=%v err=%v", sent, err, tc.wantSent, tc.wantErr)
			}
			if conn != nil {
				if got := readNotify(t, conn); got != "READY=1" {
					t.Errorf("manager got %q, want READY=1", got)
				}
			}
		})
	}
}

// TestSdNotifyReady: serve's call sends READY=1 with a status naming the
// mount, and drops NOTIFY_SOCKET so children do not inherit it.
func TestSdNotifyReady(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notify")
	conn := listenNotify(t, p)
	t.Setenv(notifySocketEnv, p)
	sdNotifyReady(mountConfig{Bucket: "bkt", Prefix: "data/", MountPoint: "/mnt/d"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	got := readNotify(t, conn)
	lines := strings.Split(got, "\n")
	if lines[0] != "READY=1" || len(lines) != 2 || lines[1] != "STATUS=serving s3://bkt/data/ at /mnt/d" {
		t.Errorf("manager got %q", got)
	}
	if v, ok := os.LookupEnv(notifySocketEnv); ok {
		t.Errorf("%s is still set to %q", notifySocketEnv, v)
	}
}
