package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// Key names one block of one version of one object, exactly as the memory
// tier does, with the block size: a block cached under another block size
// covers other bytes.
type Key struct {
	Bucket, Object, ETag string
	BlockSize, Index     int64
}

// oid names one version of one object at one block size: the first 16
// bytes of the SHA-256 of (bucket, key, ETag, block size). A block is an
// oid and its number (bid); a file holds a run of consecutive blocks of
// one oid (fileID). Every block's header in the file holds the whole key,
// checked on every read, so even a collision could not serve another
// block.
type oid [16]byte

func (k Key) oid() oid {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{k.Bucket, k.Object, k.ETag} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(k.BlockSize))
	h.Write(n[:])
	var o oid
	copy(o[:], h.Sum(nil))
	return o
}

// bid names one block: what the index and the blocks on their way are
// keyed by.
type bid struct {
	o   oid
	idx int64
}

func (k Key) bid() bid { return bid{o: k.oid(), idx: k.Index} }

// fileID names a file: n consecutive blocks of o from first on. Its name
// says all of it, so the index is rebuilt from names alone.
type fileID struct {
	o        oid
	first, n int64
}

// file is the file that holds k and the n-1 blocks after it.
func (k Key) file(n int64) fileID { return fileID{o: k.oid(), first: k.Index, n: n} }

// maxRun is the most blocks one file holds (a GET brings 4 by default).
const maxRun = 64

// name is "OID-FIRST-N", the oid in hex, the numbers in decimal.
func (f fileID) name() string {
	return hex.EncodeToString(f.o[:]) + "-" + strconv.FormatInt(f.first, 10) + "-" + strconv.FormatInt(f.n, 10)
}

// fanout is the directory of the file: one of 256, named by a byte of its
// oid mixed with its first block, so that neither many objects nor the
// runs of one large object crowd one directory.
func (f fileID) fanout() string {
	return hex.EncodeToString([]byte{f.o[0] ^ byte(f.first) ^ byte(f.first>>8)})
}

// path is where the file lives below dir.
func (f fileID) path(dir string) string { return filepath.Join(dir, f.fanout(), f.name()) }

// parseName reads a file's name back; ok is false for any other name.
func parseName(name string) (f fileID, ok bool) {
	h, rest, ok1 := strings.Cut(name, "-")
	a, b, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(h) != 2*len(f.o) {
		return f, false
	}
	if _, err := hex.Decode(f.o[:], []byte(h)); err != nil {
		return f, false
	}
	var err1, err2 error
	f.first, err1 = strconv.ParseInt(a, 10, 64)
	f.n, err2 = strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || f.first < 0 || f.n < 1 || f.n > maxRun || f.first > math.MaxInt64-f.n {
		return f, false
	}
	return f, f.name() == name // one spelling only
}

// oldName says whether name is a block file of format 1 or 2 (one block
// per file, named by 32 hex digits): a later mount removes them.
func oldName(name string) bool {
	if len(name) != 32 {
		return false
	}
	var b [16]byte
	_, err := hex.Decode(b[:], []byte(name))
	return err == nil && hex.EncodeToString(b[:]) == name
}

// A file is, for each of its blocks in order, a header page, then the
// block's bytes, padded with zeros to a whole number of pages, so that a
// file can be written, and one block of it read, with O_DIRECT (io.go) in
// one system call, straight from and into the blocks' buffers. Every block
// but the last of its object is BlockSize long, so block j of a file
// starts at j * stride(BlockSize). A block's header:
//
//	magic    "BFSBLK3\n" (8 bytes; the 3 is the format version)
//	size     uint64: the block's length in bytes
//	bsize    uint64: block size
//	index    uint64: block number
//	lens     3 x uint16: lengths of bucket, key, ETag
//	bucket, key, ETag
//	datacrc  uint32: CRC-32C of the block's bytes
//	hdrcrc   uint32: CRC-32C of the header before it
//	zeros    to the end of the page (page bytes)
//
// Integers are big-endian. A block is served only if its file is as long
// as its name and the block's header say (the blocks before the last
// whole, the last's header page + its size rounded up to a page), both
// checksums match and the key is the one asked for: a write cut short
// (kill -9, a full disk) or a flipped byte drops the file, never served.
// The padding is not checked: it is never served.
const (
	magic   = "BFSBLK3\n"
	magicV1 = "BFSBLK1\n" // one header of any length, then the bytes
	magicV2 = "BFSBLK2\n" // one block per file
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

// stride is the room a whole block of bsize bytes takes in a file.
func stride(bsize int64) int64 { return page + padded(bsize) }

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
	if len(b) >= len(magic) && (string(b[:len(magic)]) == magicV1 || string(b[:len(magic)]) == magicV2) {
		return parsed{}, fmt.Errorf("%w: written by an earlier bucketfs (format %c)", errCorrupt, b[len(magic)-2])
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
