package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
)

// Key names one block of one version of one object, exactly as the memory
// tier does, with the block size: a block cached under another block size
// covers other bytes.
type Key struct {
	Bucket, Object, ETag string
	BlockSize, Index     int64
}

// id is the name of a block's file: the first 16 bytes of the SHA-256 of
// its key. The file's header holds the whole key, checked on every read,
// so even a collision could not serve another block.
type id [16]byte

func (k Key) id() id {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{k.Bucket, k.Object, k.ETag} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(k.BlockSize))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(k.Index))
	h.Write(n[:])
	var i id
	copy(i[:], h.Sum(nil))
	return i
}

func (i id) String() string { return hex.EncodeToString(i[:]) }

// path is where the block lives below dir: a fan-out of 256 directories
// named by the first byte, so no directory grows past a few thousand
// files at the sizes a local disk holds.
func (i id) path(dir string) string {
	s := i.String()
	return filepath.Join(dir, s[:2], s)
}

// parseID reads a block file's name back; ok is false for any other name.
func parseID(name string) (i id, ok bool) {
	if len(name) != 2*len(i) {
		return i, false
	}
	if _, err := hex.Decode(i[:], []byte(name)); err != nil {
		return i, false
	}
	return i, hex.EncodeToString(i[:]) == name // lower case only
}

// A block file is a header page, then the block's bytes, padded with
// zeros to a whole number of pages, so that both can be written and read
// with O_DIRECT (io.go) in one system call, straight from and into the
// block's buffer:
//
//	magic    "BFSBLK2\n" (8 bytes; the 2 is the format version)
//	size     uint64: the block's length in bytes
//	bsize    uint64: block size
//	index    uint64: block number
//	lens     3 x uint16: lengths of bucket, key, ETag
//	bucket, key, ETag
//	datacrc  uint32: CRC-32C of the block's bytes
//	hdrcrc   uint32: CRC-32C of the header before it
//	zeros    to the end of the page (page bytes)
//
// Integers are big-endian. A file is valid only if it is exactly as long
// as its header says (page + size rounded up to a page), both checksums
// match and the key is the one asked for: a write cut short (kill -9, a
// full disk) or a flipped byte is dropped, never served. The padding is
// not checked: it is never served.
const (
	magic   = "BFSBLK2\n"
	magicV1 = "BFSBLK1\n" // one header of any length, then the bytes
	// page is the header's length, the data's offset and the unit files
	// are padded to: the alignment O_DIRECT asks for on any local disk.
	page = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sum is the checksum of a block's bytes kept with them: CRC-32C.
func Sum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// SumReader computes Sum of the bytes read through it, a read at a time,
// while they are still in the CPU's cache.
type SumReader struct {
	R   io.Reader
	sum uint32
}

func (s *SumReader) Read(b []byte) (int, error) {
	n, err := s.R.Read(b)
	s.sum = crc32.Update(s.sum, castagnoli, b[:n])
	return n, err
}

// Next returns Sum of the bytes read since the last call to Next.
func (s *SumReader) Next() uint32 {
	sum := s.sum
	s.sum = 0
	return sum
}

// headerFixed is the header's length without the key's strings.
const headerFixed = len(magic) + 3*8 + 3*2 + 8

// padded is n rounded up to a whole number of pages.
func padded(n int64) int64 { return (n + page - 1) / page * page }

// fileSize is the length of a valid file holding a block of n bytes.
func fileSize(n int64) int64 { return page + padded(n) }

// putHeader writes the header of a block of key k of n bytes whose
// checksum is sum into hdr
// (page bytes, zeroed past the header). A key too long for one page (S3
// keys are at most 1,024 bytes) is not kept.
func putHeader(hdr []byte, k Key, n int, sum uint32) error {
	if headerFixed+len(k.Bucket)+len(k.Object)+len(k.ETag) > page {
		return errors.New("key too long for the disk cache")
	}
	b := hdr[:0]
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	b = binary.BigEndian.AppendUint64(b, uint64(k.BlockSize))
	b = binary.BigEndian.AppendUint64(b, uint64(k.Index))
	for _, s := range []string{k.Bucket, k.Object, k.ETag} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	}
	b = append(b, k.Bucket...)
	b = append(b, k.Object...)
	b = append(b, k.ETag...)
	b = binary.BigEndian.AppendUint32(b, sum)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	clear(hdr[len(b):page])
	return nil
}

// errCorrupt marks a block file that must not be served.
var errCorrupt = errors.New("corrupt block file")

// parsed is what a header says.
type parsed struct {
	size    int64
	dataCRC uint32
}

// parseHeader checks the header at the start of b against k.
func parseHeader(b []byte, k Key) (parsed, error) {
	fixed := len(magic) + 3*8 + 3*2
	if len(b) >= len(magicV1) && string(b[:len(magicV1)]) == magicV1 {
		return parsed{}, fmt.Errorf("%w: written by an earlier bucketfs (format 1)", errCorrupt)
	}
	if len(b) < fixed || string(b[:len(magic)]) != magic {
		return parsed{}, fmt.Errorf("%w: no header", errCorrupt)
	}
	p := len(magic)
	size := int64(binary.BigEndian.Uint64(b[p:]))
	bsize := int64(binary.BigEndian.Uint64(b[p+8:]))
	index := int64(binary.BigEndian.Uint64(b[p+16:]))
	p += 24
	var lens [3]int
	for i := range lens {
		lens[i] = int(binary.BigEndian.Uint16(b[p:]))
		p += 2
	}
	end := p + lens[0] + lens[1] + lens[2] + 8
	if len(b) < end {
		return parsed{}, fmt.Errorf("%w: header cut short", errCorrupt)
	}
	if got, want := crc32.Checksum(b[:end-4], castagnoli), binary.BigEndian.Uint32(b[end-4:]); got != want {
		return parsed{}, fmt.Errorf("%w: header checksum mismatch", errCorrupt)
	}
	bucket := string(b[p : p+lens[0]])
	object := string(b[p+lens[0] : p+lens[0]+lens[1]])
	etag := string(b[p+lens[0]+lens[1] : end-8])
	if bucket != k.Bucket || object != k.Object || etag != k.ETag || bsize != k.BlockSize || index != k.Index {
		return parsed{}, fmt.Errorf("%w: holds another block", errCorrupt)
	}
	if size <= 0 || size > k.BlockSize {
		return parsed{}, fmt.Errorf("%w: block length %d", errCorrupt, size)
	}
	return parsed{size: size, dataCRC: binary.BigEndian.Uint32(b[end-8:])}, nil
}
