package cache

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

// panicStore panics in every GET and HEAD, as a bug in a store would.
type panicStore struct{ store.ObjectStore }

func (panicStore) ReadRange(context.Context, string, string, string, int64, int64) (io.ReadCloser, error) {
	panic("boom in ReadRange")
}

func (panicStore) Stat(context.Context, string, string) (store.Object, error) {
	panic("boom in Stat")
}

// A panic in the cache's own goroutines (a de-duplicated HEAD, a block
// fetch) becomes an error for the callers; the process lives on.
func TestPanicsBecomeErrors(t *testing.T) {
	f, _, o := newDataFixture(t, Config{}, 2*testBlock)
	c := New(panicStore{f.fault}, Config{BlockSize: testBlock})
	if _, err := c.statFile(context.Background(), "b", "obj"); err == nil || !strings.Contains(err.Error(), "boom in Stat") {
		t.Errorf("StatFile err = %v, want the panic as an error", err)
	}
	r := c.Open("b", o)
	defer r.Close()
	if _, err := r.ReadAt(context.Background(), make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "boom in ReadRange") {
		t.Errorf("ReadAt err = %v, want the panic as an error", err)
	}
	// And again: nothing was left in flight.
	if _, err := r.ReadAt(context.Background(), make([]byte, 10), 0); err == nil {
		t.Error("second ReadAt succeeded against a panicking store")
	}
}
