package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// tokenFile reads a user's web identity token without letting the user
// point the daemon (root) at a file they could not read themselves: it
// follows no symbolic link, and takes only a regular file with one link,
// owned by root or the user.
type tokenFile struct {
	path string
	uid  uint32
}

const maxToken = 64 << 10

func (t tokenFile) GetIdentityToken() ([]byte, error) {
	f, err := os.OpenFile(t.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("web identity token %s is a symbolic link: refused", t.path)
	}
	if err != nil {
		return nil, fmt.Errorf("web identity token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := safeFile(fi, t.uid); err != nil {
		return nil, fmt.Errorf("web identity token %s: %w", t.path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxToken+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxToken {
		return nil, fmt.Errorf("web identity token %s: larger than %d bytes", t.path, maxToken)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("web identity token %s is empty", t.path)
	}
	return b, nil
}

// safeFile accepts a regular file with one link, owned by root or uid, that
// nobody else may write.
func safeFile(fi os.FileInfo, uid uint32) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok || !fi.Mode().IsRegular():
		return errors.New("not a regular file: refused")
	case st.Nlink != 1:
		return fmt.Errorf("has %d hard links: refused", st.Nlink)
	case st.Uid != 0 && st.Uid != uid:
		return fmt.Errorf("owned by uid %d, neither root nor the user (uid %d): refused", st.Uid, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("writable by group or others (mode %04o): refused", fi.Mode().Perm())
	}
	return nil
}
