package namespace

import "testing"

func TestOwnerOf(t *testing.T) {
	mount := Owner{UID: 1000, GID: 100}
	perUser := Owner{UID: 1000, GID: 100, Caller: true}
	for _, tc := range []struct {
		name             string
		o                Owner
		uid, gid         uint32
		known            bool
		wantUID, wantGID uint32
	}{
		{"one identity shows the mount's owner", mount, 2001, 2001, true, 1000, 100},
		{"per-user shows the caller", perUser, 2001, 3000, true, 2001, 3000},
		{"per-user shows root as root", perUser, 0, 0, true, 0, 0},
		{"per-user without a caller shows the mount's", perUser, 0, 0, false, 1000, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid := tc.o.Of(tc.uid, tc.gid, tc.known)
			if uid != tc.wantUID || gid != tc.wantGID {
				t.Errorf("Of(%d, %d, %v) = %d, %d; want %d, %d", tc.uid, tc.gid, tc.known, uid, gid, tc.wantUID, tc.wantGID)
			}
		})
	}
}
