package namespace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Writes on a namespace of several identities (Config.Identities): every
// write is signed as its owner, background parts included; a file being
// written is its owner's alone until uploaded; staging is per user.

// signed records who signed each write request (S3's log of the test).
type signed struct {
	mu  sync.Mutex
	log []string // "op bucket/key who"
}

func (s *signed) add(op, bucket, key, who string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, op+" "+bucket+"/"+key+" "+who)
}

func (s *signed) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// policyWriter is policyStore's writes: each identity may write its own
// buckets (the grants), and every request's signer is recorded.
type policyWriter struct {
	*policyStore
	signed *signed
	down   *atomic.Bool // every write fails as if the server were unreachable
}

func (p policyWriter) check(ctx context.Context, op, bucket, key string) error {
	n, _ := who(ctx)
	p.signed.add(op, bucket, key, n)
	if p.down.Load() {
		return errors.New("connection refused")
	}
	return p.allow(ctx, bucket)
}

func (p policyWriter) CreateBucket(ctx context.Context, bucket string) error {
	return store.ErrAccessDenied
}

func (p policyWriter) PutIf(ctx context.Context, bucket, key string, body io.ReaderAt, size int64, opts store.PutOptions) (store.Object, error) {
	if err := p.check(ctx, "put", bucket, key); err != nil {
		return store.Object{}, err
	}
	return p.mem.PutIf(ctx, bucket, key, body, size, opts)
}

func (p policyWriter) Delete(ctx context.Context, bucket, key string) error {
	if err := p.check(ctx, "delete", bucket, key); err != nil {
		return err
	}
	return p.mem.Delete(ctx, bucket, key)
}

func (p policyWriter) Copy(ctx context.Context, bucket, srcKey, srcETag, dstKey string) (store.Object, error) {
	if err := p.check(ctx, "copy", bucket, dstKey); err != nil {
		return store.Object{}, err
	}
	return p.mem.Copy(ctx, bucket, srcKey, srcETag, dstKey)
}

func (p policyWriter) StartUpload(ctx context.Context, bucket, key string) (store.Upload, error) {
	if err := p.check(ctx, "start", bucket, key); err != nil {
		return nil, err
	}
	up, err := p.mem.StartUpload(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return signedUpload{Upload: up, p: p, bucket: bucket, key: key}, nil
}

// signedUpload records the signer of each part (a real store's upload is
// its starter's: the Router binds it to the principal; here the request's
// context says who sent it).
type signedUpload struct {
	store.Upload
	p           policyWriter
	bucket, key string
}

func (u signedUpload) PutPart(ctx context.Context, num int, body io.ReaderAt, size int64) error {
	if err := u.p.check(ctx, fmt.Sprintf("part%d", num), u.bucket, u.key); err != nil {
		return err
	}
	return u.Upload.PutPart(ctx, num, body, size)
}

// uids own the test identities' staging (the test's own uid unless root).
var uids = func() map[string]uint32 {
	if os.Geteuid() != 0 {
		u := uint32(os.Getuid())
		return map[string]uint32{"alice": u, "bob": u}
	}
	return map[string]uint32{"alice": 60001, "bob": 60002}
}()

// owners is Config.Identities for the test's identities.
func owners(ctx context.Context) (context.Context, Identity, error) {
	n, err := who(ctx)
	if err != nil {
		return ctx, Identity{}, err
	}
	return ctx, Identity{Key: n, UID: uids[n], GID: uids[n], Ctx: as(n)}, nil
}

type peruserWrites struct {
	*peruserFixture
	signed *signed
	down   *atomic.Bool
	area   *stage.Area
}

func newPeruserWrites(t *testing.T, guarded bool) *peruserWrites {
	t.Helper()
	return newPeruserWritesIn(t, guarded, 64<<20)
}

// newPeruserWritesIn is newPeruserWrites with a staging area of limit bytes
// (each user's share the default half).
func newPeruserWritesIn(t *testing.T, guarded bool, limit int64) *peruserWrites {
	t.Helper()
	f := newPeruserFixture(t)
	s, down := &signed{}, &atomic.Bool{}
	w := f.c.Keeps(policyWriter{policyStore: f.ps, signed: s, down: down})
	area, err := stage.Open(stage.Config{Dir: filepath.Join(t.TempDir(), "staging"), Limit: limit, Writer: w,
		PartSize: store.MinPartSize, Threshold: store.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { area.Close() })
	f.ns = New(f.c, Config{Writer: w, Staging: area, Identities: owners, AllowDelete: !guarded})
	return &peruserWrites{peruserFixture: f, signed: s, down: down, area: area}
}

// create makes bucket/dir/name as ctx's owner and writes body, leaving it
// open (not uploaded).
func (f *peruserWrites) create(t *testing.T, ctx context.Context, bucket, name string, body []byte) (*File, *Handle) {
	t.Helper()
	file, h, err := f.ns.Dir(bucket, "dir/").Create(ctx, name, syscall.O_WRONLY)
	if err != nil {
		t.Fatalf("create %s/dir/%s as %v: %v", bucket, name, ctx.Value(whoKey{}), err)
	}
	for off := 0; off < len(body); off += 1 << 20 {
		if _, err := h.Write(ctx, body[off:min(off+1<<20, len(body))], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	return file, h
}

// TestPerUserStagingShare: one user's files being written take at most
// their share of the staging area (half by default): past it their writes
// fail with ENOSPC, the other users keep room, and what is uploaded and
// closed counts no more.
func TestPerUserStagingShare(t *testing.T) {
	const mib = 1 << 20
	f := newPeruserWritesIn(t, false, 8*mib)
	alice, bob := as("alice"), as("bob")
	_, aH := f.create(t, alice, "bkt-c", "a.csv", make([]byte, 3*mib))
	_, bH, err := f.ns.Dir("bkt-c", "dir/").Create(alice, "b.csv", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bH.Write(alice, make([]byte, 2*mib), 0); !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, stage.ErrUserFull) {
		t.Errorf("alice's write past her 4 MiB share: %v, want ENOSPC (ErrUserFull)", err)
	}
	// Bob has his own share, and the area has room for it.
	_, cH := f.create(t, bob, "bkt-c", "c.csv", make([]byte, 4*mib))
	for _, h := range []struct {
		ctx context.Context
		h   *Handle
	}{{alice, aH}, {bob, cH}} {
		if err := h.h.Flush(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.h.Release(h.ctx)
	}
	// a.csv is uploaded and closed: its bytes are free again.
	if _, err := bH.Write(alice, make([]byte, 2*mib), 0); err != nil {
		t.Errorf("alice's write once a.csv is uploaded: %v", err)
	}
	if err := bH.Flush(alice); err != nil {
		t.Fatal(err)
	}
	bH.Release(alice)
}

func TestPerUserWrites(t *testing.T) {
	f := newPeruserWrites(t, false)
	alice, bob, nobody := as("alice"), as("bob"), context.Background()
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrAccessDenied) {
			t.Errorf("%s: %v, want access denied", what, err)
		}
	}

	// Alice's file in her bucket, not yet uploaded: hers alone.
	aFile, aH := f.create(t, alice, "bkt-a", "new.csv", []byte("alice's draft\n"))
	if names, err := listNames(alice, f.ns.Dir("bkt-a", "dir/")); err != nil || !slices.Contains(names, "new.csv") {
		t.Errorf("alice's listing %q, %v: want her new.csv", names, err)
	}
	_, err := f.ns.Dir("bkt-a", "dir/").Lookup(bob, "new.csv")
	denied("bob's lookup of alice's staged file", err)
	names, err := listNames(bob, f.ns.Dir("bkt-a", "dir/"))
	denied(fmt.Sprintf("bob's listing of alice's bucket (%q)", names), err)
	_, err = aFile.Open(bob, 0)
	denied("bob's open of alice's staged File (inode passed on)", err)
	if err := aH.Flush(alice); err != nil {
		t.Fatalf("alice's close: %v", err)
	}
	aH.Release(alice)
	if data, err := readWhole(alice, mustLookup(t, f, alice, "bkt-a", "new.csv")); err != nil || string(data) != "alice's draft\n" {
		t.Errorf("alice reads back %q, %v", data, err)
	}

	// In the shared bucket: bob does not see alice's file until it is
	// uploaded, then sees it at once (asked with his own identity).
	cFile, cH := f.create(t, alice, "bkt-c", "out.csv", []byte("result\n"))
	if _, err := f.ns.Dir("bkt-c", "dir/").Lookup(bob, "out.csv"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's lookup of alice's staged c/dir/out.csv: %v, want not found", err)
	}
	if names, err := listNames(bob, f.ns.Dir("bkt-c", "dir/")); err != nil || slices.Contains(names, "out.csv") {
		t.Errorf("bob's listing of c/dir: %q, %v; want no out.csv before the upload", names, err)
	}
	_, err = cFile.Open(bob, 0)
	denied("bob's open of alice's staged c/dir/out.csv", err)
	if err := cH.Flush(alice); err != nil {
		t.Fatal(err)
	}
	cH.Release(alice)
	if data, err := readWhole(bob, mustLookup(t, f, bob, "bkt-c", "out.csv")); err != nil || string(data) != "result\n" {
		t.Errorf("bob reads alice's uploaded file: %q, %v", data, err)
	}

	// Bob's write to alice's bucket: refused at close, nothing left.
	bFile, bH := f.create(t, bob, "bkt-a", "intruder.csv", []byte("bob was here\n"))
	denied("bob's close of a/dir/intruder.csv", bH.Flush(bob))
	denied("bob's second close", bH.Flush(bob))
	_, err = bH.Write(bob, []byte("more"), 0)
	denied("bob's write after the refusal", err)
	bH.Release(bob)
	if _, err := f.ps.mem.Stat(context.Background(), "bkt-a", "dir/intruder.csv"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's refused file exists: %v", err)
	}
	if names, err := listNames(alice, f.ns.Dir("bkt-a", "dir/")); err != nil || slices.Contains(names, "intruder.csv") {
		t.Errorf("alice's listing %q, %v: bob's refused file in it", names, err)
	}
	if kept := f.ns.Drain(context.Background()); len(kept) != 0 {
		t.Errorf("the refused file is kept for a retry: %q", kept)
	}
	_ = bFile

	// A caller without an identity changes nothing.
	_, _, err = f.ns.Dir("bkt-c", "dir/").Create(nobody, "x.csv", syscall.O_WRONLY)
	denied("create without an identity", err)
	_, err = f.ns.Dir("bkt-c", "dir/").Mkdir(nobody, "sub")
	denied("mkdir without an identity", err)
	denied("unlink without an identity", f.ns.Dir("bkt-c", "dir/").Unlink(nobody, "out.csv"))

	// Every write was signed by its owner.
	for _, l := range f.signed.all() {
		switch {
		case strings.Contains(l, "/dir/new.csv"), strings.Contains(l, "/dir/out.csv"):
			if !strings.HasSuffix(l, " alice") {
				t.Errorf("%s: want alice's", l)
			}
		case strings.Contains(l, "intruder"):
			if !strings.HasSuffix(l, " bob") {
				t.Errorf("%s: want bob's", l)
			}
		default:
			t.Errorf("unexpected write %s", l)
		}
	}
}

func mustLookup(t *testing.T, f *peruserWrites, ctx context.Context, bucket, name string) *File {
	t.Helper()
	e, err := f.lookup(ctx, bucket, name)
	if err != nil || e.File == nil {
		t.Fatalf("lookup %s/dir/%s as %v: %v", bucket, name, ctx.Value(whoKey{}), err)
	}
	return e.File
}

// An object opened for writing stays its version for everyone else: the
// File (the inode the kernel shares) shows and reads the object, and the
// writer's own lookups get an inode of their own.
func TestPerUserOverwrite(t *testing.T) {
	f := newPeruserWrites(t, false)
	alice, bob := as("alice"), as("bob")
	shared := mustLookup(t, f, alice, "bkt-c", "shared.csv")
	orig := shared.Attr()
	h, err := shared.Open(alice, syscall.O_RDWR|syscall.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(alice, []byte("short\n"), 0); err != nil {
		t.Fatal(err)
	}
	// Bob's lookup gives the same inode, which still is the object.
	bobs := mustLookup(t, f, bob, "bkt-c", "shared.csv")
	if bobs.Ino() != shared.Ino() || !shared.Pinned() {
		t.Errorf("bob's inode %d, the object's %d (pinned %v)", bobs.Ino(), shared.Ino(), shared.Pinned())
	}
	if a := shared.AttrWith(bob, nil); a.Size != orig.Size {
		t.Errorf("bob sees size %d while alice writes, want the object's %d", a.Size, orig.Size)
	}
	if a := shared.AttrWith(bob, h); a.Size != orig.Size {
		t.Errorf("bob given alice's handle sees size %d, want the object's %d", a.Size, orig.Size)
	}
	if a := shared.AttrWith(alice, h); a.Size != 6 {
		t.Errorf("alice's fstat: size %d, want 6", a.Size)
	}
	if data, err := readWhole(bob, shared); err != nil || int64(len(data)) != orig.Size {
		t.Errorf("bob reads %d bytes, %v; want the object's %d", len(data), err, orig.Size)
	}
	mine := mustLookup(t, f, alice, "bkt-c", "shared.csv")
	if mine.Ino() == shared.Ino() || mine.Attr().Size != 6 {
		t.Errorf("alice's lookup while writing: inode %d (the object's %d), size %d", mine.Ino(), shared.Ino(), mine.Attr().Size)
	}
	if err := h.Flush(alice); err != nil {
		t.Fatal(err)
	}
	h.Release(alice)
	if data, err := readWhole(bob, mustLookup(t, f, bob, "bkt-c", "shared.csv")); err != nil || string(data) != "short\n" {
		t.Errorf("bob after alice's upload reads %q, %v", data, err)
	}
}

// Parts sent in the background while a large file is written, and the
// upload's start, are signed as the writer; each user's files are staged
// in a directory of their own.
func TestPerUserBackgroundParts(t *testing.T) {
	f := newPeruserWrites(t, false)
	alice := as("alice")
	body := bytes.Repeat([]byte("0123456789abcdef"), 3*store.MinPartSize/16+1000)
	file, h := f.create(t, alice, "bkt-c", "big.bin", body)

	// Alice's staging directory is hers, 0700; her staged file 0600.
	dir := filepath.Join(f.area.Dir(), fmt.Sprint(uids["alice"]))
	checkOwned(t, dir, 0o700|os.ModeDir, uids["alice"])
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("alice's staging directory: %v, %v", ents, err)
	}
	checkOwned(t, filepath.Join(dir, ents[0].Name()), 0o600, uids["alice"])
	if fi, err := os.Stat(f.area.Dir()); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("the mount's staging directory: %v, %v; want 0711", fi.Mode(), err)
	}

	// The parts written so far go out before the close.
	for deadline := time.Now().Add(10 * time.Second); !slices.ContainsFunc(f.signed.all(), func(l string) bool {
		return strings.HasPrefix(l, "part2 ")
	}); {
		if time.Now().After(deadline) {
			t.Fatalf("no part sent in the background: %q", f.signed.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.Flush(alice); err != nil {
		t.Fatal(err)
	}
	h.Release(alice)
	_ = file
	parts := 0
	for _, l := range f.signed.all() {
		if !strings.HasSuffix(l, " alice") {
			t.Errorf("%s: not signed by alice", l)
		}
		if strings.HasPrefix(l, "part") {
			parts++
		}
	}
	if parts < 3 {
		t.Errorf("%d parts in %q, want at least 3", parts, f.signed.all())
	}
	if o, err := f.ps.mem.Stat(context.Background(), "bkt-c", "dir/big.bin"); err != nil || o.Size != int64(len(body)) {
		t.Errorf("uploaded %v, %v", o, err)
	}
	f.area.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("alice's empty staging directory stays after close: %v", err)
	}
}

func checkOwned(t *testing.T, path string, mode os.FileMode, uid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || (os.Geteuid() == 0 && st.Uid != uid) {
		t.Errorf("%s: mode %v uid %d, want %v uid %d", path, fi.Mode(), st.Uid, mode, uid)
	}
}

// The delete guard is per user: each deletes only what they wrote.
func TestPerUserDeleteGuard(t *testing.T) {
	f := newPeruserWrites(t, true)
	alice, bob := as("alice"), as("bob")
	_, h := f.create(t, alice, "bkt-c", "mine.csv", []byte("x"))
	if err := h.Flush(alice); err != nil {
		t.Fatal(err)
	}
	h.Release(alice)
	d := f.ns.Dir("bkt-c", "dir/")
	if err := d.Unlink(bob, "mine.csv"); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("bob deletes alice's file: %v, want the guard's refusal", err)
	}
	if err := d.Unlink(alice, "mine.csv"); err != nil {
		t.Errorf("alice deletes her own file: %v", err)
	}
}

// A file whose upload failed (the server unreachable) is kept staged and
// retried at unmount; refused then (the owner lost the right), it is
// dropped, not kept.
func TestPerUserDrainRefused(t *testing.T) {
	f := newPeruserWrites(t, false)
	alice := as("alice")
	f.down.Store(true)
	_, h := f.create(t, alice, "bkt-c", "late.csv", []byte("x"))
	if err := h.Flush(alice); err == nil {
		t.Fatal("close with the server unreachable succeeded")
	}
	h.Release(alice)
	dir := filepath.Join(f.area.Dir(), fmt.Sprint(uids["alice"]))
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("alice's failed upload is not kept staged: %v", ents)
	}
	f.down.Store(false)
	f.ps.grants["alice"] = []string{"bkt-a"}
	if kept := f.ns.Drain(context.Background()); len(kept) != 0 {
		t.Errorf("Drain kept %q, refused for its owner", kept)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused file stays staged: %v", ents)
	}
	if _, err := f.ps.mem.Stat(context.Background(), "bkt-c", "dir/late.csv"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused file exists: %v", err)
	}
}
