package namespace

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

func TestErrno(t *testing.T) {
	tests := []struct {
		err   error
		want  syscall.Errno
		quiet bool
	}{
		{nil, 0, true},
		{store.ErrNotFound, syscall.ENOENT, true},
		{store.ErrAccessDenied, syscall.EACCES, false},
		{store.ErrAuth, syscall.EACCES, false},
		{store.ErrChanged, syscall.ESTALE, false},
		{store.ErrThrottled, syscall.EIO, false},
		{store.ErrUnsupported, syscall.ENOTSUP, false},
		{errWrap{store.ErrNotFound}, syscall.ENOENT, true},
		{errWrap{errString("connection reset")}, syscall.EIO, false},
		{store.ErrExists, syscall.EIO, false},
		{fmt.Errorf("upload: %w", store.ErrExists), syscall.EIO, false},
		{stage.ErrFull, syscall.ENOSPC, true},
		{context.Canceled, syscall.EINTR, true},
		{ErrReadOnly, syscall.EROFS, true},
		{ErrInvalid, syscall.EINVAL, true},
		{ErrExist, syscall.EEXIST, true},
		{ErrNotEmpty, syscall.ENOTEMPTY, true},
		{ErrCrossDevice, syscall.EXDEV, true},
		{ErrBusy, syscall.EBUSY, true},
		{ErrNotWriter, syscall.EBADF, true},
		{ErrNotPermitted, syscall.EPERM, true},
		{ErrControl, syscall.EPERM, true},
		{fmt.Errorf("setattr: %w", ErrNotSupported), syscall.ENOTSUP, true},
		{errWrap{syscall.ECONNRESET}, syscall.EIO, false},
	}
	for _, tt := range tests {
		if got, quiet := Errno(tt.err); got != tt.want || quiet != tt.quiet {
			t.Errorf("Errno(%v) = %v, quiet %v; want %v, quiet %v", tt.err, got, quiet, tt.want, tt.quiet)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

type errWrap struct{ err error }

func (e errWrap) Error() string { return "wrapped: " + e.err.Error() }
func (e errWrap) Unwrap() error { return e.err }
