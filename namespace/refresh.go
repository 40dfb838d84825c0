package namespace

import (
	"bytes"
	"errors"
	"strings"
	"sync"
)

// Refresh forgets the cached metadata and listings of key (a file or a
// directory, no trailing "/") in bucket and of everything below it, so a
// change made by someone else shows at once instead of after the
// metadata TTL ("bucketfs refresh"). key "" is the whole bucket.
func (ns *NS) Refresh(bucket, key string) { ns.cache.Refresh(bucket, key) }

// RefreshPath parses path, written to the refresh control file relative to
// the root of a mount of bucket (every bucket if "") at prefix, into the
// bucket and key Refresh takes and the path's segments below the root.
func RefreshPath(bucket, prefix, path string) (b, key string, segs []string, err error) {
	path = strings.TrimSpace(path)
	for _, s := range strings.Split(path, "/") {
		switch s {
		case "", ".":
		case "..":
			return "", "", nil, errors.New("a path with \"..\" is refused; give it relative to the mount's root")
		default:
			segs = append(segs, s)
		}
	}
	keySegs := segs
	if bucket == "" {
		if len(segs) == 0 {
			return "", "", nil, errors.New("name a bucket (or a path in one) on a mount of every bucket")
		}
		bucket, keySegs = segs[0], segs[1:]
	}
	return bucket, strings.TrimSuffix(prefix+strings.Join(keySegs, "/"), "/"), segs, nil
}

// RefreshLine refreshes the path written as one line to the refresh
// control file of a mount of bucket (every bucket if "") at prefix, and
// returns the path's segments below the mount's root (RefreshPath). A
// path the mount cannot have is logged and fails with ErrInvalid.
func (ns *NS) RefreshLine(bucket, prefix, line string) ([]string, error) {
	b, key, segs, err := RefreshPath(bucket, prefix, line)
	if err != nil {
		ns.log.Warn("refresh: "+err.Error(), "path", strings.TrimSpace(line))
		return nil, ErrInvalid
	}
	ns.Refresh(b, key)
	ns.log.Debug("refreshed", "bucket", b, "key", key)
	return segs, nil
}

// maxRefreshLine bounds a line that waits for its newline.
const maxRefreshLine = 4096

// RefreshLines splits what one open of the refresh control file is given
// into lines, each one path. It is safe for concurrent use.
type RefreshLines struct {
	mu   sync.Mutex
	part []byte // the start of a line not complete yet
}

// Write takes data and calls refresh with each line it completes, at
// once. The first error of refresh ends the write and drops the rest of
// what was written so far; so does a line longer than maxRefreshLine
// (ErrInvalid).
func (l *RefreshLines) Write(data []byte, refresh func(line string) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, data...)
	for {
		line, rest, ok := bytes.Cut(l.part, []byte{'\n'})
		if !ok {
			break
		}
		l.part = rest
		if err := refresh(string(line)); err != nil {
			l.part = nil
			return err
		}
	}
	if len(l.part) > maxRefreshLine {
		l.part = nil
		return ErrInvalid
	}
	return nil
}

// Flush calls refresh with a last line written without a newline, unless
// it is blank (close(2) flushes).
func (l *RefreshLines) Flush(refresh func(line string) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := string(l.part)
	l.part = nil
	if strings.TrimSpace(line) == "" {
		return nil
	}
	return refresh(line)
}
