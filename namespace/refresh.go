package namespace

import (
	"errors"
	"strings"
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
