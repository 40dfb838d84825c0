package main

import (
	"log/slog"
	"net"
	"os"
)

// notifySocketEnv names the datagram socket of the service manager
// (systemd's Type=notify services, see sd_notify(3)).
const notifySocketEnv = "NOTIFY_SOCKET"

// sdNotify sends state (e.g. "READY=1") to the service manager. It returns
// false, nil when no manager listens. A name starting with "@" is an
// abstract socket; Go's net package maps the "@" for us.
func sdNotify(state string) (bool, error) {
	addr := os.Getenv(notifySocketEnv)
	if addr == "" {
		return false, nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// sdNotifyReady tells systemd that the mount is ready, so a Type=notify
// unit (contrib/systemd/bucketfs@.service) counts as started only once the
// mount answers, and units ordered after it find the files there. The
// variable is then dropped so that nothing this process starts speaks for
// the unit.
func sdNotifyReady(c mountConfig, log *slog.Logger) {
	sent, err := sdNotify("READY=1\nSTATUS=serving " + c.source() + " at " + c.MountPoint)
	_ = os.Unsetenv(notifySocketEnv)
	switch {
	case err != nil:
		log.Warn("cannot tell the service manager that the mount is ready", "err", err)
	case sent:
		log.Debug("told the service manager the mount is ready")
	}
}
