// Package stage keeps what the mount writes on local disk until it is
// uploaded: one staging file per file open for writing, in a directory
// bounded in bytes, and the upload of a staging file to its object (one
// PutObject when small, else a multipart upload whose parts go out in
// parallel, and out in the background while a file is still being
// written sequentially; parts of the object a file was created over that
// nobody touched are copied on the server, base.go).
package stage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bucketfs/bucketfs/store"
)

// Defaults for zero fields of Config.
const (
	DefaultLimit       = 10 << 30
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 16
	DefaultThreshold   = 16 << 20
	DefaultPartTimeout = 5 * time.Minute
)

// ErrFull is returned when a write would take the staging area past its
// limit. It wraps ENOSPC, which is what the writer sees.
var ErrFull = fmt.Errorf("staging area full: %w", syscall.ENOSPC)

// ErrUserFull is returned when a write would take one user's staging files
// past Config.UserLimit (a mount of many users, For). It wraps ErrFull.
var ErrUserFull = fmt.Errorf("this user's share of the staging area is full: %w", ErrFull)

// Config says where to stage and how to upload.
type Config struct {
	// Dir is the staging directory, created (0700) if missing. Files
	// left in it by an earlier mount are not touched.
	Dir string
	// Limit bounds the bytes of all staging files together (--staging-size).
	Limit int64
	// UserLimit bounds the bytes of one user's staging files, on a mount
	// of many users (For; --staging-size-per-user), so that no user can
	// take the whole Limit from the others. 0: DefaultUserShare of Limit;
	// above Limit: Limit.
	UserLimit int64
	// Writer uploads the staged files.
	Writer store.Writer
	// PartSize is the size of multipart upload parts (the first 1,000 of
	// them; see partRange). Threshold is the size above which a file is
	// uploaded in parts. Concurrency bounds one file's parts in flight.
	PartSize    int64
	Threshold   int64
	Concurrency int
	// PartTimeout bounds the upload of one part (or of one small object),
	// retries included.
	PartTimeout time.Duration
	Logger      *slog.Logger
	// Landed, if set, is handed the bytes of every file uploaded, with the
	// object they became (the disk cache keeps them: cache.Landed).
	Landed func(bucket, key string, o store.Object, r io.ReaderAt)
	// Now is the clock of the "full" log lines' rate limit; nil: time.Now.
	Now func() time.Time
}

// DefaultUserShare is the part of Config.Limit one user may take when
// Config.UserLimit is 0: half, so that a user may still stage a file of
// half the area and the others keep the other half.
const DefaultUserShare = 0.5

func (c Config) withDefaults() Config {
	if c.Limit <= 0 {
		c.Limit = DefaultLimit
	}
	if c.UserLimit <= 0 {
		c.UserLimit = int64(float64(c.Limit) * DefaultUserShare)
	}
	c.UserLimit = min(c.UserLimit, c.Limit)
	if c.PartSize < store.MinPartSize {
		c.PartSize = DefaultPartSize
	}
	if c.Threshold <= 0 {
		c.Threshold = DefaultThreshold
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PartTimeout <= 0 {
		c.PartTimeout = DefaultPartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// fullLogEvery is how often a full area (or a user's full share) is
// logged while writes keep failing on it.
const fullLogEvery = 10 * time.Second

// logFull says whether a refusal at now is to be logged, and if so
// remembers it in *last.
func logFull(last *time.Time, now time.Time) bool {
	if !last.IsZero() && now.Sub(*last) < fullLogEvery {
		return false
	}
	*last = now
	return true
}

// Area is the staging directory of one mount, or of one user of a mount
// shared by many (For). It is safe for concurrent use.
type Area struct {
	cfg Config
	seq atomic.Uint64
	b   *budget // shared by an area and every user's area in it
	ub  *budget // a user's area's own (For), bounded by Config.UserLimit; nil: none
	own owner   // whose files these are (For); the zero owner: the daemon's
	// users are the areas For made, by uid (owner.go).
	usersMu sync.Mutex
	users   map[uint32]*Area
}

// budget is the bound on the bytes of every staging file of a mount.
type budget struct {
	mu       sync.Mutex
	used     int64
	files    int
	lastFull time.Time // when ErrFull was last logged
}

// Open prepares the staging directory.
func Open(cfg Config) (*Area, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("stage: no directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	return &Area{cfg: cfg, b: &budget{}}, nil
}

// Threshold is the size above which files go up in parts: the size from
// which creating a file over an object (CreateOver) saves a download.
func (a *Area) Threshold() int64 { return a.cfg.Threshold }

// Dir is the staging directory.
func (a *Area) Dir() string { return a.cfg.Dir }

// Close removes the staging directory if nothing is left in it: staging
// files that still hold data nobody could upload stay, for the user to
// recover.
func (a *Area) Close() error {
	a.closeUsers()
	err := os.Remove(a.cfg.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

// reserve accounts for n more bytes (n may be negative): in the user's
// budget, if the area is a user's, and in the mount's.
func (a *Area) reserve(n int64) error {
	u := a.ub
	if u == nil {
		return a.reserveShared(n)
	}
	u.mu.Lock() // held across the mount's: both change, or neither
	defer u.mu.Unlock()
	if n > 0 && u.used+n > a.cfg.UserLimit {
		if logFull(&u.lastFull, a.cfg.Now()) {
			a.cfg.Logger.Error("a user's share of the staging area is full: that user's writes fail with ENOSPC (No space left on device) until their staged files are uploaded and closed; raise --staging-size-per-user or have the user close files",
				"user", a.own.name, "uid", a.own.uid, "dir", a.cfg.Dir, "used", u.used, "limit", a.cfg.UserLimit, "asked", n)
		}
		return ErrUserFull
	}
	if err := a.reserveShared(n); err != nil {
		return err
	}
	u.used += n
	return nil
}

// reserveShared accounts for n more bytes in the mount's budget.
func (a *Area) reserveShared(n int64) error {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > 0 && b.used+n > a.cfg.Limit {
		if logFull(&b.lastFull, a.cfg.Now()) {
			a.cfg.Logger.Error("staging area full: writes fail with ENOSPC (No space left on device) until staged files are uploaded and closed; raise --staging-size or close files",
				"dir", a.cfg.Dir, "used", b.used, "limit", a.cfg.Limit, "asked", n)
		}
		return ErrFull
	}
	b.used += n
	return nil
}

// File is one staging file: the bytes of one file being written, with what
// is needed to upload them. Its methods are safe for concurrent use.
type File struct {
	a    *Area
	f    *os.File
	path string

	// io orders writes against the final upload: writes and truncations
	// share it, Upload holds it alone so the object is one snapshot.
	io sync.RWMutex

	mu       sync.Mutex
	size     int64
	reserved int64 // bytes accounted in the area for this file
	removed  bool
	stream   stream // upload.go
	base     *base  // the object the file was created over, if any (base.go)
}

// Create makes a new, empty staging file. label (a key) only helps a
// person find the file in the directory.
func (a *Area) Create(label string) (*File, error) {
	name := strconv.FormatUint(a.seq.Add(1), 10) + "-" + sanitize(label)
	p := filepath.Join(a.cfg.Dir, name)
	// O_EXCL: never a name that is there already (a user's own
	// directory may hold names the user put there), nor a link.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("staging file: %w", err)
	}
	if err := a.own.chown(f); err != nil {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("staging file: %w", err)
	}
	a.b.mu.Lock()
	a.b.files++
	a.b.mu.Unlock()
	sf := &File{a: a, f: f, path: p}
	sf.stream.init(sf)
	return sf, nil
}

// sanitize keeps the last path segment of a key, in characters safe in a
// file name, short.
func sanitize(label string) string {
	if i := len(label) - 1; i >= 0 {
		label = filepath.Base(label)
	}
	b := make([]byte, 0, 64)
	for i := 0; i < len(label) && len(b) < 64; i++ {
		c := label[i]
		if c == '/' || c == 0 || c < ' ' || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return string(b)
}

// Path is where the staged bytes are on disk.
func (f *File) Path() string { return f.path }

// Size is the staged file's size.
func (f *File) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// growLocked accounts for the file reaching end bytes: its bytes on local
// disk, which leave out the holes of a base object not fetched (base.go).
// Callers hold f.mu.
func (f *File) growLocked(end int64) error {
	local := max(end, f.size) - f.holesLocked()
	if local <= f.reserved {
		return nil
	}
	if err := f.a.reserve(local - f.reserved); err != nil {
		return err
	}
	f.reserved = local
	return nil
}

// WriteAt writes p at off, growing the file as needed; ErrFull when the
// area has no room. A write that appends may start the upload of the
// parts it completes (see stream.wrote).
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("staging write at negative offset %d", off)
	}
	f.io.RLock()
	defer f.io.RUnlock()
	end := off + int64(len(p))
	f.mu.Lock()
	if f.removed {
		f.mu.Unlock()
		return 0, os.ErrClosed
	}
	if f.base != nil && f.base.anyHoleLocked(off, end, f.a.cfg.PartSize) {
		f.mu.Unlock()
		return 0, errNotLocal
	}
	if err := f.growLocked(end); err != nil {
		f.mu.Unlock()
		return 0, err
	}
	appended := off <= f.size && end > f.size
	f.mu.Unlock()
	n, err := f.f.WriteAt(p, off)
	f.mu.Lock()
	if end := off + int64(n); end > f.size {
		f.size = end
	}
	f.stream.touchedLocked(off, off+int64(n))
	f.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("staging write: %w", err)
	}
	if appended {
		f.stream.wrote()
	}
	return n, nil
}

// ReadAt reads staged bytes; io.EOF at the end of the file. Bytes of a
// base object must be made local first (Read does).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	size := f.Size()
	if off >= size {
		return 0, io.EOF
	}
	if int64(len(p)) > size-off {
		p = p[:size-off]
		n, err := f.f.ReadAt(p, off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return f.f.ReadAt(p, off)
}

// Truncate sets the file's size.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("staging truncate to negative size %d", size)
	}
	f.io.RLock()
	defer f.io.RUnlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed {
		return os.ErrClosed
	}
	if f.base != nil && size > f.base.size && f.base.lastHoleLocked(f.a.cfg.PartSize) {
		return errNotLocal
	}
	if err := f.growLocked(size); err != nil {
		return err
	}
	if err := f.f.Truncate(size); err != nil {
		return fmt.Errorf("staging truncate: %w", err)
	}
	lo, hi := min(size, f.size), max(size, f.size)
	f.size = size
	f.stream.touchedLocked(lo, max(hi, lo+1))
	if f.base != nil {
		f.base.cutLocked(size, f.a.cfg.PartSize)
	}
	if local := size - f.holesLocked(); local < f.reserved {
		_ = f.a.reserve(local - f.reserved)
		f.reserved = local
	}
	return nil
}

// Remove stops any upload under way, deletes the staging file and gives
// its bytes back to the area.
func (f *File) Remove() error {
	f.stream.stop()
	f.io.Lock()
	defer f.io.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed {
		return nil
	}
	f.removed = true
	_ = f.a.reserve(-f.reserved)
	f.reserved = 0
	f.a.b.mu.Lock()
	f.a.b.files--
	f.a.b.mu.Unlock()
	cerr := f.f.Close()
	rerr := os.Remove(f.path)
	return errors.Join(cerr, rerr)
}
