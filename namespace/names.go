package namespace

import (
	"strings"
	"unicode/utf8"
)

// ShadowSuffix names the file that is hidden by a directory of the same name.
// S3 can hold an object "a" and objects under "a/" at once; a directory tree
// cannot. The directory wins the name "a", and the object stays readable as
// "a" + ShadowSuffix (unless a real key of that name exists, which wins).
const ShadowSuffix = ".bucketfs-file"

// maxName is the longest file name Linux accepts (NAME_MAX).
const maxName = 255

// usable reports whether a key segment can be shown as a file name. Empty
// segments (from "//" or a leading "/"), "." and "..", names longer than
// NAME_MAX, names with NUL and names that are not valid UTF-8 are not shown:
// they could not be used, or could reach outside the mount.
func usable(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxName &&
		!strings.ContainsAny(name, "\x00/") && utf8.ValidString(name)
}

// Hide logs a key whose name cannot be shown, once per key for the life of
// the mount.
func (ns *NS) Hide(bucket, key, why string) {
	if _, seen := ns.hidden.LoadOrStore(bucket+"/"+key, true); !seen {
		ns.log.Warn("key not shown: its name cannot be a file name", "bucket", bucket, "key", key, "why", why)
	}
}

func whyUnusable(name string) string {
	switch {
	case name == "":
		return "empty path segment"
	case name == "." || name == "..":
		return "dot segment"
	case len(name) > maxName:
		return "name longer than 255 bytes"
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	default:
		return "contains NUL or slash"
	}
}

// validBucketName is a loose check of S3 bucket naming, so that lookups of
// names like ".Trash" or "desktop.ini" at the root of an all-buckets mount
// cost no request.
func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' || c == '.' || c == '_':
			if i == 0 {
				return false
			}
		case c >= 'A' && c <= 'Z': // legacy buckets and some S3-compatible servers
		default:
			return false
		}
	}
	return true
}
