package namespace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
)

var errBoom = fmt.Errorf("injected: connection reset: %w", store.ErrThrottled)

// TestFailures: what each failure leaves behind. Every byte stays under
// at least one name, in the store or staged and listed.
func TestFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		do     func(e *env) error
		err    error             // errors.Is the returned error
		stored map[string]string // key -> content ("-": absent)
		listed map[string]bool   // "prefix|name" -> listed or not
		after  func(t *testing.T, e *env)
	}{
		{
			name: "refused conditional create",
			do: func(e *env) error {
				_, h, err := e.root().Create(ctx, "race.txt", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer h.Release(ctx)
				h.Write(ctx, []byte("mine"), 0)
				e.mem.Put(ctx, bkt, "race.txt", strings.NewReader("theirs"), 6)
				return h.Flush(ctx)
			},
			err:    store.ErrExists,
			stored: map[string]string{"race.txt": "theirs"},
		},
		{
			name: "server refuses conditional writes",
			do: func(e *env) error {
				e.failOn(faultstore.OpPut, "plain.txt", 1, fmt.Errorf("501: %w", store.ErrUnsupported))
				return writeFile(t, e.root(), "plain.txt", "p")
			},
			stored: map[string]string{"plain.txt": "p"},
		},
		{
			name: "upload failure keeps the new file listed and readable",
			do: func(e *env) error {
				e.failOn(faultstore.OpPut, "new.txt", -1, errBoom)
				return writeFile(t, e.root(), "new.txt", "data")
			},
			err:    store.ErrThrottled,
			stored: map[string]string{"new.txt": "-"},
			listed: map[string]bool{"|new.txt": true},
			after: func(t *testing.T, e *env) {
				en, err := e.root().Lookup(ctx, "new.txt")
				if err != nil || en.File == nil {
					t.Fatalf("lookup after failed upload: %+v, %v", en, err)
				}
				if got := read(t, en.File); got != "data" {
					t.Errorf("reads %q, want the staged bytes", got)
				}
				if kept := e.ns.Drain(ctx); len(kept) != 1 {
					t.Errorf("drain kept %q, want the one staging file", kept)
				} else if _, err := os.Stat(kept[0]); err != nil {
					t.Errorf("kept staging file: %v", err)
				}
				e.failOn(faultstore.OpPut, "new.txt", 0, nil)
				if kept := e.ns.Drain(ctx); len(kept) != 0 {
					t.Errorf("drain kept %q after the fault", kept)
				}
				if got, _ := e.object("new.txt"); got != "data" {
					t.Errorf("after drain new.txt holds %q", got)
				}
			},
		},
		{
			name: "upload failure of a changed file keeps the old object",
			do: func(e *env) error {
				e.failOn(faultstore.OpPut, "file.txt", -1, errBoom)
				return e.withOpen(ctx, "file.txt", syscall.O_WRONLY|syscall.O_TRUNC, func(h *Handle) error {
					h.Write(ctx, []byte("changed"), 0)
					return h.Flush(ctx)
				})
			},
			err:    store.ErrThrottled,
			stored: map[string]string{"file.txt": "hello\n"},
			listed: map[string]bool{"|file.txt": true},
			after: func(t *testing.T, e *env) {
				en, _ := e.root().Lookup(ctx, "file.txt")
				if got := read(t, en.File); got != "changed" {
					t.Errorf("reads %q, want the staged bytes", got)
				}
			},
		},
		{
			name: "rename half done: copied, delete failed",
			do: func(e *env) error {
				e.failOn(faultstore.OpDelete, "file.txt", -1, errBoom)
				_, err := e.root().Rename(ctx, "file.txt", e.root(), "moved.txt", false, Entry{})
				return err
			},
			err:    store.ErrThrottled,
			stored: map[string]string{"file.txt": "hello\n", "moved.txt": "hello\n"},
		},
		{
			name: "directory rename: a copy fails",
			do: func(e *env) error {
				e.failOn(faultstore.OpCopy, "dir2/sub/b.txt", -1, errBoom)
				_, err := e.root().Rename(ctx, "dir", e.root(), "dir2", false, Entry{})
				return err
			},
			err:    store.ErrThrottled,
			stored: map[string]string{"dir/a.txt": "a", "dir/sub/b.txt": "b", "dir2/sub/b.txt": "-"},
			listed: map[string]bool{"|dir/": true},
		},
		{
			name: "directory rename: a delete fails",
			do: func(e *env) error {
				e.failOn(faultstore.OpDelete, "dir/a.txt", -1, errBoom)
				_, err := e.root().Rename(ctx, "dir", e.root(), "dir2", false, Entry{})
				return err
			},
			err:    store.ErrThrottled,
			stored: map[string]string{"dir/a.txt": "a", "dir2/a.txt": "a", "dir2/sub/b.txt": "b"},
			listed: map[string]bool{"|dir/": true, "|dir2/": true},
		},
		{
			name: "ENOSPC in staging",
			do: func(e *env) error {
				_, h, err := e.root().Create(ctx, "big.bin", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer h.Release(ctx)
				_, err = h.Write(ctx, make([]byte, 9<<20), 0)
				return err
			},
			err: syscall.ENOSPC,
		},
		{
			name: "ENOSPC mid-file: a new file is not uploaded cut short",
			do: func(e *env) error {
				_, h, err := e.root().Create(ctx, "cut.bin", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer h.Release(ctx)
				if _, err := h.Write(ctx, make([]byte, 4<<20), 0); err != nil {
					return err
				}
				if _, err := h.Write(ctx, make([]byte, 6<<20), 4<<20); !errors.Is(err, syscall.ENOSPC) {
					return fmt.Errorf("write past the staging limit: %v, want ENOSPC", err)
				}
				return h.Flush(ctx)
			},
			err:    syscall.ENOSPC,
			stored: map[string]string{"cut.bin": "-"},
			listed: map[string]bool{"|cut.bin": false},
		},
		{
			name: "ENOSPC mid-file: an overwrite keeps the old object",
			do: func(e *env) error {
				return e.withOpen(ctx, "file.txt", syscall.O_WRONLY|syscall.O_TRUNC, func(h *Handle) error {
					if err := h.Truncate(ctx, 0); err != nil {
						return err
					}
					if _, err := h.Write(ctx, []byte("new start "), 0); err != nil {
						return err
					}
					if _, err := h.Write(ctx, make([]byte, 9<<20), 10); !errors.Is(err, syscall.ENOSPC) {
						return fmt.Errorf("write past the staging limit: %v, want ENOSPC", err)
					}
					if _, err := h.Write(ctx, []byte("end"), 20); err != nil {
						return err // a later write elsewhere does not mend the hole
					}
					if err := h.Flush(ctx); !errors.Is(err, syscall.ENOSPC) {
						return fmt.Errorf("close: %v, want ENOSPC", err)
					}
					_, err := h.Write(ctx, []byte("x"), 0)
					return err // the file is dropped: later writes fail too
				})
			},
			err:    syscall.ENOSPC,
			stored: map[string]string{"file.txt": "hello\n"},
			listed: map[string]bool{"|file.txt": true},
		},
		{
			name: "ENOSPC written again once there is room: uploaded whole",
			do: func(e *env) error {
				_, a, err := e.root().Create(ctx, "a.bin", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				if _, err := a.Write(ctx, make([]byte, 6<<20), 0); err != nil {
					return err
				}
				_, b, err := e.root().Create(ctx, "b.bin", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer b.Release(ctx)
				body := strings.Repeat("b", 4<<20)
				if _, err := b.Write(ctx, []byte(body), 0); !errors.Is(err, syscall.ENOSPC) {
					return fmt.Errorf("write past the staging limit: %v, want ENOSPC", err)
				}
				if err := a.Flush(ctx); err != nil {
					return err
				}
				a.Release(ctx) // uploaded and closed: its room is free again
				if _, err := b.Write(ctx, []byte(body), 0); err != nil {
					return err
				}
				return b.Flush(ctx)
			},
			stored: map[string]string{"a.bin": string(make([]byte, 6<<20)), "b.bin": strings.Repeat("b", 4<<20)},
			listed: map[string]bool{"|b.bin": true},
		},
		{
			name: "object changed under an open writer",
			do: func(e *env) error {
				return e.withOpen(ctx, "file.txt", syscall.O_WRONLY, func(h *Handle) error {
					e.mem.Put(ctx, bkt, "file.txt", strings.NewReader("replaced!"), 9)
					_, err := h.Write(ctx, []byte("X"), 0)
					return err
				})
			},
			err:    store.ErrChanged,
			stored: map[string]string{"file.txt": "replaced!"},
		},
		{
			name: "object changed under an open reader",
			do: func(e *env) error {
				return e.withOpen(ctx, "file.txt", syscall.O_RDONLY, func(h *Handle) error {
					e.mem.Put(ctx, bkt, "file.txt", strings.NewReader("replaced!"), 9)
					_, hold, err := h.Read(ctx, make([]byte, 100), 0)
					hold.Release()
					return err
				})
			},
			err: store.ErrChanged,
			after: func(t *testing.T, e *env) {
				en, err := e.root().Lookup(ctx, "file.txt")
				if err != nil {
					t.Fatal(err)
				}
				if got := read(t, en.File); got != "replaced!" {
					t.Errorf("lookup after the stale read reads %q, want the new object", got)
				}
			},
		},
		{
			name: "unlink of a file created here and never uploaded",
			do: func(e *env) error {
				_, h, err := e.root().Create(ctx, "c.txt", syscall.O_WRONLY)
				if err != nil {
					return err
				}
				defer h.Release(ctx)
				e.mem.Put(ctx, bkt, "c.txt", strings.NewReader("theirs"), 6)
				return e.root().Unlink(ctx, "c.txt")
			},
			stored: map[string]string{"c.txt": "theirs"},
		},
		{
			name: "mkdir fails",
			do: func(e *env) error {
				e.failOn(faultstore.OpPut, "made/", -1, errBoom)
				_, err := e.root().Mkdir(ctx, "made")
				return err
			},
			err:    store.ErrThrottled,
			listed: map[string]bool{"|made/": false},
		},
		{
			name: "unlink fails",
			do: func(e *env) error {
				e.failOn(faultstore.OpDelete, "file.txt", -1, errBoom)
				return e.root().Unlink(ctx, "file.txt")
			},
			err:    store.ErrThrottled,
			stored: map[string]string{"file.txt": "hello\n"},
			listed: map[string]bool{"|file.txt": true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true)
			e.list("")
			err := tt.do(e)
			if (tt.err == nil) != (err == nil) || (tt.err != nil && !errors.Is(err, tt.err)) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			e.check(t, tt.stored, tt.listed)
			if tt.after != nil {
				tt.after(t, e)
			}
		})
	}
}
