package namespace

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

// TestSetSize: a setattr(2) truncates through a handle that writes (staged,
// uploaded at its close), and by name otherwise (uploaded at once); without
// a size it changes nothing and shows the attributes as they are.
func TestSetSize(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		flags    int // the open the setattr goes through; -1: by name
		size     int64
		set      bool
		wantSize int64
		stored   string // file.txt after the setattr, before any close
	}{
		{"by name, size", -1, 2, true, 2, "he"},
		{"by name, times only", -1, 0, false, 6, "hello\n"},
		{"through a reader, size", syscall.O_RDONLY, 3, true, 3, "hel"},
		{"through a writer, size", syscall.O_RDWR, 1, true, 1, "hello\n"},
		{"through a writer, times only", syscall.O_RDWR, 0, false, 6, "hello\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true)
			en, err := e.root().Lookup(ctx, "file.txt")
			if err != nil {
				t.Fatal(err)
			}
			var h *Handle
			if tt.flags >= 0 {
				if h, err = en.File.Open(ctx, uint32(tt.flags)); err != nil {
					t.Fatal(err)
				}
				defer h.Release(ctx)
			}
			a, err := en.File.SetSize(ctx, h, tt.size, tt.set)
			if err != nil || a.Size != tt.wantSize {
				t.Fatalf("SetSize = %+v, %v; want size %d", a, err, tt.wantSize)
			}
			if got, _ := e.object("file.txt"); got != tt.stored {
				t.Errorf("stored %q, want %q", got, tt.stored)
			}
		})
	}
}

// TestPages: the kernel keeps the pages of one version, bypasses them for
// a writer, and drops them at the open of a file being written.
func TestPages(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	open := func(flags uint32) *Handle {
		t.Helper()
		en, err := e.root().Lookup(ctx, "file.txt")
		if err != nil {
			t.Fatal(err)
		}
		h, err := en.File.Open(ctx, flags)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Release(ctx) })
		return h
	}
	for _, tc := range []struct {
		name  string
		flags uint32
		want  PageCache
	}{
		{"a reader of an object", syscall.O_RDONLY, PagesKeep},
		{"a writer", syscall.O_RDWR, PagesBypass},
		{"a reader of the file being written", syscall.O_RDONLY, PagesDrop},
	} {
		if got := open(tc.flags).Pages(); got != tc.want {
			t.Errorf("%s: Pages = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStale: the kernel forgets the name after a read of a pinned version
// that changed or went, and after a close that dropped the file; not after
// other failures, nor after a writer's read of a changed object.
func TestStale(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, true)
	en, err := e.root().Lookup(ctx, "file.txt")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := en.File.Open(ctx, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Release(ctx)
	writer, err := en.File.Open(ctx, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Release(ctx)
	for _, tc := range []struct {
		name string
		h    *Handle
		err  error
		want bool
	}{
		{"a pinned version changed", reader, fmt.Errorf("read: %w", store.ErrChanged), true},
		{"a pinned version failed otherwise", reader, store.ErrThrottled, false},
		{"no error", reader, nil, false},
		{"a writer's object changed", writer, store.ErrChanged, false},
		{"a writer's file dropped", writer, fmt.Errorf("upload: %w (%w)", syscall.ENOSPC, ErrDropped), true},
	} {
		if got := tc.h.Stale(tc.err); got != tc.want {
			t.Errorf("%s: Stale = %v, want %v", tc.name, got, tc.want)
		}
	}
}
