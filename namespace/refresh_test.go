package namespace

import (
	"strings"
	"testing"
)

func TestRefreshPath(t *testing.T) {
	for _, tc := range []struct {
		name, bucket, prefix, path string
		wantBucket, wantKey, segs  string
		err                        bool
	}{
		{name: "all buckets, bucket only", path: "b1", wantBucket: "b1", segs: "b1"},
		{name: "all buckets, key", path: " b1/dir/f.csv\r", wantBucket: "b1", wantKey: "dir/f.csv", segs: "b1/dir/f.csv"},
		{name: "all buckets, dots and slashes", path: "/b1/./dir//", wantBucket: "b1", wantKey: "dir", segs: "b1/dir"},
		{name: "all buckets, root refused", path: " / ", err: true},
		{name: "all buckets, empty refused", path: "", err: true},
		{name: "dotdot refused", path: "b1/../b2", err: true},
		{name: "dotdot refused on one bucket", bucket: "b", path: "..", err: true},
		{name: "one bucket, root", bucket: "b", path: ".", wantBucket: "b"},
		{name: "one bucket, key", bucket: "b", path: "dir/f", wantBucket: "b", wantKey: "dir/f", segs: "dir/f"},
		{name: "prefix, root", bucket: "b", prefix: "p/q/", path: "", wantBucket: "b", wantKey: "p/q"},
		{name: "prefix, key", bucket: "b", prefix: "p/", path: "x/y/", wantBucket: "b", wantKey: "p/x/y", segs: "x/y"},
		{name: "dotted name kept", bucket: "b", path: "...x/.y", wantBucket: "b", wantKey: "...x/.y", segs: "...x/.y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, k, segs, err := RefreshPath(tc.bucket, tc.prefix, tc.path)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if b != tc.wantBucket || k != tc.wantKey || strings.Join(segs, "/") != tc.segs {
				t.Fatalf("= %q %q %q, want %q %q %q", b, k, segs, tc.wantBucket, tc.wantKey, tc.segs)
			}
		})
	}
}
