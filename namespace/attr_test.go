package namespace

import (
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// A version already shown keeps the time it was shown with; another
// version, or a name shown for the first time, shows its own.
func TestAttrAs(t *testing.T) {
	ns := New(nil, Config{})
	at := func(etag string, size int64, ms int) *File {
		return ns.objectFile("b", store.Object{Key: "k", ETag: etag, Size: size, ModTime: time.Unix(100, int64(ms)*1e6)})
	}
	listed, headed := at("e1", 5, 250), at("e1", 5, 0)
	for _, tc := range []struct {
		name      string
		f, known  *File
		wantMilli int64
	}{
		{"first shown", headed, nil, 100_000},
		{"same version, HEAD after the listing", headed, listed, 100_250},
		{"same version, listing after HEAD", listed, headed, 100_000},
		{"another ETag", at("e2", 5, 0), listed, 100_000},
		{"another size", at("e1", 6, 0), listed, 100_000},
	} {
		if got := tc.f.AttrAs(tc.known); got.ModTime.UnixMilli() != tc.wantMilli || got.Ino != tc.f.Ino() || got.Size != tc.f.Attr().Size {
			t.Errorf("%s: %+v, want time %d ms", tc.name, got, tc.wantMilli)
		}
	}
}

func TestRenameFlags(t *testing.T) {
	for _, tc := range []struct {
		flags     uint32
		noReplace bool
		err       bool
	}{
		{0, false, false},
		{RenameNoReplace, true, false},
		{RenameExchange, false, true},
		{RenameExchange | RenameNoReplace, false, true},
		{1 << 2, false, false}, // RENAME_WHITEOUT: ignored
	} {
		nr, err := RenameFlags(tc.flags)
		if nr != tc.noReplace || (err != nil) != tc.err {
			t.Errorf("RenameFlags(%#x) = %v, %v", tc.flags, nr, err)
		}
	}
}
