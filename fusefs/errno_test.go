package fusefs

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

func TestToErrno(t *testing.T) {
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{store.ErrNotFound, syscall.ENOENT},
		{store.ErrAccessDenied, syscall.EACCES},
		{store.ErrAuth, syscall.EACCES},
		{store.ErrChanged, syscall.ESTALE},
		{store.ErrThrottled, syscall.EIO},
		{store.ErrUnsupported, syscall.ENOTSUP},
		{errWrap{store.ErrNotFound}, syscall.ENOENT},
		{errWrap{errString("connection reset")}, syscall.EIO},
		{store.ErrExists, syscall.EIO},
		{fmt.Errorf("upload: %w", store.ErrExists), syscall.EIO},
		{stage.ErrFull, syscall.ENOSPC},
		{context.Canceled, syscall.EINTR},
		{namespace.ErrReadOnly, syscall.EROFS},
		{namespace.ErrInvalid, syscall.EINVAL},
		{namespace.ErrExist, syscall.EEXIST},
		{namespace.ErrNotEmpty, syscall.ENOTEMPTY},
		{namespace.ErrCrossDevice, syscall.EXDEV},
		{namespace.ErrBusy, syscall.EBUSY},
		{namespace.ErrNotWriter, syscall.EBADF},
		{namespace.ErrNotPermitted, syscall.EPERM},
		{errWrap{syscall.ECONNRESET}, syscall.EIO},
	}
	for _, tt := range tests {
		if got, _ := toErrno(tt.err); got != tt.want {
			t.Errorf("toErrno(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

type errWrap struct{ err error }

func (e errWrap) Error() string { return "wrapped: " + e.err.Error() }
func (e errWrap) Unwrap() error { return e.err }
