package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/metrics"
)

// TestListenMetrics: a busy port is refused with one line that names the
// address and the fix; off means no listener.
func TestListenMetrics(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		addr    string
		wantErr []string
	}{
		{"", nil},
		{"127.0.0.1:0", nil},
		{busy.Addr().String(), []string{"cannot serve metrics on " + busy.Addr().String(), "already in use", "--metrics-addr"}},
		{"192.0.2.1:9100", []string{"cannot serve metrics on 192.0.2.1:9100", "127.0.0.1:PORT"}},
	} {
		ln, err := listenMetrics(tc.addr)
		if ln != nil {
			ln.Close()
		}
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("listenMetrics(%q): %v", tc.addr, err)
		case tc.wantErr == nil && tc.addr == "" && ln != nil:
			t.Errorf("listenMetrics(\"\") listens on %s", ln.Addr())
		case tc.wantErr != nil && err == nil:
			t.Errorf("listenMetrics(%q) succeeded", tc.addr)
		case tc.wantErr != nil:
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
					t.Errorf("listenMetrics(%q): %q, want one line containing %q", tc.addr, err, w)
				}
			}
		}
	}
}

// TestServeMetrics: what serve wires together answers on the port, and
// the control files hold one snapshot, as text and as JSON.
func TestServeMetrics(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "test", Source: "s3://b/", MountPoint: "/mnt/b"})
	m.ObserveRequest("get", "ok", time.Millisecond, 0)
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { serveMetrics(ctx, m, ln, slog.New(slog.DiscardHandler)); close(done) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `bucketfs_store_requests_total{op="get",status="ok"} 1`) {
		t.Errorf("/metrics lacks the request:\n%s", body)
	}
	text, js := m.StatusFiles(nil)()
	var s metrics.Snapshot
	if err := json.Unmarshal(js, &s); err != nil {
		t.Fatal(err)
	}
	if s.Requests.Requests != 1 || s.MountPoint != "/mnt/b" || s.Version != "test" {
		t.Errorf("status.json %+v", s)
	}
	// The text is the snapshot's, and both files end their last line.
	var want bytes.Buffer
	s.WriteText(&want)
	if string(text) != want.String() || !bytes.HasSuffix(js, []byte("\n")) {
		t.Errorf("status = %q, want %q; status.json ends %q", text, want.String(), js[max(len(js)-5, 0):])
	}
}
