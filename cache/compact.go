package cache

import (
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// A cached object is kept without its name (the listing or the record key
// holds that) as a compact, pointer-free record: size, time as Unix
// nanoseconds and the ETag as bytes. An ETag is nearly always the MD5 of
// the content in hex (32 characters, 16 bytes as binary), with "-N" after
// it for a multipart upload; servers that send something else (versitygw
// sends none for files written straight into its directory) keep it as
// text beside the name.

// ETag forms.
const (
	etagNone uint8 = iota // ""
	etagHex               // 32 lowercase hex digits, with "-parts" when parts > 0
	etagRaw               // anything else, stored as text of length parts after the name
)

// meta is what the cache keeps of one object besides its name.
type meta struct {
	size  int64
	mtime int64 // Unix nanoseconds; 0 is the zero time
	md5   [16]byte
	parts uint32 // multipart part count (etagHex), or the raw ETag's length (etagRaw)
	form  uint8
}

// pack splits o into its compact record and the raw ETag text that must
// be stored beside the name ("" unless the ETag has no compact form).
func pack(o store.Object) (meta, string) {
	m := meta{size: o.Size}
	if !o.ModTime.IsZero() {
		m.mtime = o.ModTime.UnixNano()
	}
	e := o.ETag
	if e == "" {
		return m, ""
	}
	hexPart, suffix, multi := strings.Cut(e, "-")
	if len(hexPart) == 32 && isLowerHex(hexPart) {
		var parts uint64
		ok := true
		if multi {
			var err error
			parts, err = strconv.ParseUint(suffix, 10, 32)
			// Only a suffix that prints back the same is compact.
			ok = err == nil && parts > 0 && strconv.FormatUint(parts, 10) == suffix
		}
		if ok {
			hex.Decode(m.md5[:], []byte(hexPart))
			m.form, m.parts = etagHex, uint32(parts)
			return m, ""
		}
	}
	m.form, m.parts = etagRaw, uint32(len(e))
	return m, e
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// rawLen is how many bytes of ETag text follow the name.
func (m *meta) rawLen() int {
	if m.form == etagRaw {
		return int(m.parts)
	}
	return 0
}

// object rebuilds the store.Object named key; raw is the ETag text stored
// beside the name (used only for etagRaw).
func (m *meta) object(key, raw string) store.Object {
	o := store.Object{Key: key, Size: m.size}
	if m.mtime != 0 {
		o.ModTime = time.Unix(0, m.mtime).UTC()
	}
	switch m.form {
	case etagHex:
		var b [32 + 11]byte
		hex.Encode(b[:32], m.md5[:])
		s := b[:32]
		if m.parts > 0 {
			s = append(s, '-')
			s = strconv.AppendUint(s, uint64(m.parts), 10)
		}
		o.ETag = string(s)
	case etagRaw:
		o.ETag = raw
	}
	return o
}
