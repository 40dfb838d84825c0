// Command fusefloor is the floor of a FUSE daemon's CPU on a sequential
// read: a go-fuse file system of one file whose bytes are already in
// memory (a 64 MiB pattern, repeated), answered the way bucketfs answers
// a READ from a cached block (a slice into the buffer, one writev, no
// copy in the daemon). Whatever CPU it spends per GiB read is what the
// kernel's copy into the page cache and the round trip of each request
// cost, before any byte has come from a network: a daemon that fetches
// its bytes pays this plus the receiving (which the SDK client also pays).
//
//	fusefloor [--size 1GiB] [--read-ahead-kib 4096] MOUNTPOINT
//
// It mounts with bucketfs's mount options and serves until SIGINT or
// SIGTERM (or an unmount). --read-ahead-kib sets the kernel's read-ahead
// of the mount as bucketfs does for root (0: leave the kernel's 128 KiB
// default, as on a mount made by an ordinary user); only root can raise it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

const pattern = 64 << 20

type root struct{ fs.Inode }

type file struct {
	fs.Inode
	size int64
	data []byte
}

var (
	_ fs.NodeOnAdder   = (*root)(nil)
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeOpener    = (*file)(nil)
	_ fs.NodeReader    = (*file)(nil)
)

var big *file

func (r *root) OnAdd(ctx context.Context) {
	r.AddChild("big", r.NewPersistentInode(ctx, big, fs.StableAttr{Mode: fuse.S_IFREG}), false)
}

func (f *file) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode, out.Size, out.Blksize = 0o444, uint64(f.size), 1<<20
	return 0
}

func (f *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Read answers from the pattern without copying: two slices when the
// range wraps around its end, as bucketfs answers across two blocks.
func (f *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := min(int64(len(dest)), f.size-off)
	if n <= 0 {
		return fuse.ReadResultData(nil), 0
	}
	p := off % pattern
	head := f.data[p:min(p+n, pattern)]
	var tail []byte
	if rest := n - int64(len(head)); rest > 0 {
		tail = f.data[:rest]
	}
	return slices{head, tail}, 0
}

// slices is a ReadResult that go-fuse writes with one writev.
type slices [2][]byte

func (s slices) Size() int { return len(s[0]) + len(s[1]) }
func (s slices) Bytes(buf []byte) ([]byte, fuse.Status) {
	return append(append(buf[:0], s[0]...), s[1]...), fuse.OK
}
func (s slices) Slices() ([][]byte, fuse.Status) {
	if s[1] == nil {
		return [][]byte{s[0]}, fuse.OK
	}
	return [][]byte{s[0], s[1]}, fuse.OK
}
func (s slices) Done() {}

func main() {
	size := flag.Int64("size", 1<<30, "bytes in the file")
	ra := flag.Int("read-ahead-kib", 4096, "kernel read-ahead of the mount in KiB (root only; 0: the kernel's default)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: fusefloor [--size N] [--read-ahead-kib K] MOUNTPOINT")
		os.Exit(2)
	}
	mp := flag.Arg(0)
	data := make([]byte, pattern)
	for i := range data {
		data[i] = byte(i * 7)
	}
	big = &file{size: *size, data: data}
	opts := &fs.Options{}
	opts.MountOptions = fuse.MountOptions{
		FsName: "fusefloor", Name: "fusefloor",
		MaxWrite: 1 << 20, MaxReadAhead: 1 << 20, MaxBackground: 64,
		DisableXAttrs: true, DirectMount: os.Geteuid() == 0,
		Options: []string{"ro"},
	}
	server, err := fs.Mount(mp, &root{}, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fusefloor: mount %s: %v\n", mp, err)
		os.Exit(1)
	}
	if *ra > 0 {
		if err := setReadAhead(mp, *ra); err != nil {
			fmt.Fprintf(os.Stderr, "fusefloor: read-ahead left at the default: %v\n", err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; _ = server.Unmount() }()
	server.Wait()
}

// setReadAhead writes kib to the read_ahead_kb of the mount's backing
// device, found by its device number.
func setReadAhead(mp string, kib int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(mp, &st); err != nil {
		return err
	}
	dev := strconv.FormatUint(uint64(st.Dev>>8&0xfff), 10) + ":" + strconv.FormatUint(uint64(st.Dev&0xff|(st.Dev>>12)&0xfff00), 10)
	return os.WriteFile(filepath.Join("/sys/class/bdi", dev, "read_ahead_kb"), []byte(strconv.Itoa(kib)+"\n"), 0)
}
