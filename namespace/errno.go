package namespace

import (
	"context"
	"errors"
	"syscall"

	"github.com/bucketfs/bucketfs/store"
)

// errnos is the one table from errors to errno values, first match wins.
// quiet errors are answers, not failures, and are not logged.
var errnos = []struct {
	err   error
	errno syscall.Errno
	quiet bool
}{
	{store.ErrNotFound, syscall.ENOENT, true},
	{store.ErrAccessDenied, syscall.EACCES, false},
	{store.ErrAuth, syscall.EACCES, false},
	{store.ErrChanged, syscall.ESTALE, false},
	{store.ErrExists, syscall.EIO, false}, // a create lost the race to another writer
	{store.ErrUnsupported, syscall.ENOTSUP, false},
	{ErrReadOnly, syscall.EROFS, true},
	{ErrInvalid, syscall.EINVAL, true},
	{ErrExist, syscall.EEXIST, true},
	{ErrNotEmpty, syscall.ENOTEMPTY, true},
	{ErrCrossDevice, syscall.EXDEV, true},
	{ErrBusy, syscall.EBUSY, true},
	{ErrNotWriter, syscall.EBADF, true},
	{ErrNotPermitted, syscall.EPERM, true}, // the delete guard logs it
	{ErrControl, syscall.EPERM, true},
	{ErrNotSupported, syscall.ENOTSUP, true},
	{syscall.ENOSPC, syscall.ENOSPC, true},
	{context.Canceled, syscall.EINTR, true},
}

// Errno maps an error of the namespace, or of the store and staging area
// it wraps, to the errno a request is answered with: the one place this
// happens (package fusefs passes it on). Anything not in the table is
// EIO. quiet says the error is an ordinary answer, not a failure to log.
func Errno(err error) (errno syscall.Errno, quiet bool) {
	if err == nil {
		return 0, true
	}
	for _, e := range errnos {
		if errors.Is(err, e.err) {
			return e.errno, e.quiet
		}
	}
	return syscall.EIO, false
}
