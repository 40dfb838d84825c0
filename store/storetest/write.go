package storetest

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/bucketfs/bucketfs/store"
)

// writeTests are the conformance tests of the write side beyond Put and
// Delete: conditional puts, server-side copies and multipart uploads.
var writeTests = []struct {
	name string
	fn   func(t *testing.T, newStore NewStoreFunc)
}{
	{"PutIf", testPutIf},
	{"PutIfMultipart", testPutIfMultipart},
	{"Copy", testCopy},
	{"Upload", testUpload},
}

func readAll(t *testing.T, s store.ObjectStore, bucket, key string) []byte {
	t.Helper()
	ctx := testContext(t)
	o, err := s.Stat(ctx, bucket, key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	p := make([]byte, o.Size)
	n, err := store.ReadAt(ctx, s, bucket, key, "", p, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt(%q): %v", key, err)
	}
	return p[:n]
}

func testPutIf(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	v1, v2 := []byte("first"), []byte("second!")
	o1, err := w.PutIf(ctx, bucket, "cond/new", bytes.NewReader(v1), int64(len(v1)), store.PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatalf("PutIf(IfAbsent) of a free key: %v", err)
	}
	tests := []struct {
		name string
		opts store.PutOptions
		err  error
	}{
		{"IfAbsent on a taken key", store.PutOptions{IfAbsent: true}, store.ErrExists},
		{"IfMatch with another ETag", store.PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"}, store.ErrChanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.PutIf(ctx, bucket, "cond/new", bytes.NewReader(v2), int64(len(v2)), tc.opts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("PutIf = %v, want %v", err, tc.err)
			}
			if got := readAll(t, s, bucket, "cond/new"); !bytes.Equal(got, v1) {
				t.Errorf("object = %q after a failed conditional put, want %q", got, v1)
			}
		})
	}
	t.Run("IfMatch with the current ETag", func(t *testing.T) {
		o2, err := w.PutIf(ctx, bucket, "cond/new", bytes.NewReader(v2), int64(len(v2)), store.PutOptions{IfMatch: o1.ETag})
		if err != nil {
			t.Fatalf("PutIf(IfMatch current): %v", err)
		}
		if o2.ETag == o1.ETag || o2.Size != int64(len(v2)) {
			t.Errorf("PutIf = %+v after %+v", o2, o1)
		}
		if got := readAll(t, s, bucket, "cond/new"); !bytes.Equal(got, v2) {
			t.Errorf("object = %q, want %q", got, v2)
		}
	})
}

func testPutIfMultipart(t *testing.T, newStore NewStoreFunc) {
	if testing.Short() {
		t.Skip("multipart uploads skipped in -short mode")
	}
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	data := pattern(7, 20<<20)
	o, err := w.PutIf(ctx, bucket, "cond/big", bytes.NewReader(data), int64(len(data)), store.PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatalf("PutIf(IfAbsent) of 20 MiB: %v", err)
	}
	if o.Size != int64(len(data)) {
		t.Errorf("size %d, want %d", o.Size, len(data))
	}
	_, err = w.PutIf(ctx, bucket, "cond/big", bytes.NewReader(data[:1<<20]), 1<<20, store.PutOptions{IfAbsent: true})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second PutIf(IfAbsent) = %v, want ErrExists", err)
	}
	big := pattern(8, 20<<20)
	_, err = w.PutIf(ctx, bucket, "cond/big", bytes.NewReader(big), int64(len(big)), store.PutOptions{IfAbsent: true})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("multipart PutIf(IfAbsent) on a taken key = %v, want ErrExists", err)
	}
	if got := readAll(t, s, bucket, "cond/big"); !bytes.Equal(got, data) {
		t.Errorf("object changed by failed conditional puts")
	}
}

func testCopy(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	data := pattern(9, 3000)
	src := put(ctx, t, w, bucket, "copy/src data.bin", data)
	put(ctx, t, w, bucket, "copy/dst", []byte("old"))
	tests := []struct {
		name, src, etag, dst string
		err                  error
	}{
		{"to a new key", "copy/src data.bin", "", "copy/sub/new key+1", nil},
		{"over an existing key, pinned", "copy/src data.bin", src.ETag, "copy/dst", nil},
		{"pinned to another ETag", "copy/src data.bin", "0123456789abcdef0123456789abcdef", "copy/nope", store.ErrChanged},
		{"missing source", "copy/missing", "", "copy/nope", store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := w.Copy(ctx, bucket, tc.src, tc.etag, tc.dst)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Copy = %+v, %v; want %v", o, err, tc.err)
				}
				if _, err := s.Stat(ctx, bucket, tc.dst); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("a failed copy left %s: %v", tc.dst, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if o.Key != tc.dst || o.Size != int64(len(data)) || o.ETag == "" {
				t.Errorf("Copy = %+v", o)
			}
			if got := readAll(t, s, bucket, tc.dst); !bytes.Equal(got, data) {
				t.Errorf("copy has other bytes")
			}
			if st, err := s.Stat(ctx, bucket, tc.dst); err != nil || st.ETag != o.ETag {
				t.Errorf("Stat(copy) = %+v, %v; Copy said ETag %q", st, err, o.ETag)
			}
		})
	}
	if got := readAll(t, s, bucket, "copy/src data.bin"); !bytes.Equal(got, data) {
		t.Errorf("source changed by copies")
	}
}

func testUpload(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, w, bucket := newStore(t)
	const ps = store.MinPartSize
	p1, p2, p3 := pattern(10, ps), pattern(11, ps), pattern(12, 1000)
	t.Run("parts resent and completed", func(t *testing.T) {
		up, err := w.StartUpload(ctx, bucket, "up/obj")
		if err != nil {
			t.Fatal(err)
		}
		// Parts arrive out of order, and part 2 is sent twice: the second
		// one counts.
		for _, p := range []struct {
			num  int
			data []byte
		}{{3, p3}, {2, pattern(13, ps)}, {1, p1}, {2, p2}} {
			if err := up.PutPart(ctx, p.num, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
				t.Fatalf("PutPart(%d): %v", p.num, err)
			}
		}
		if _, err := s.Stat(ctx, bucket, "up/obj"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("object visible before Complete: %v", err)
		}
		o, err := up.Complete(ctx, 3, store.PutOptions{IfAbsent: true})
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		want := append(append(append([]byte{}, p1...), p2...), p3...)
		if o.Size != int64(len(want)) || o.ETag == "" {
			t.Errorf("Complete = %+v, want size %d", o, len(want))
		}
		if got := readAll(t, s, bucket, "up/obj"); !bytes.Equal(got, want) {
			t.Errorf("assembled object has other bytes")
		}
	})
	t.Run("fewer parts than sent", func(t *testing.T) {
		up, err := w.StartUpload(ctx, bucket, "up/short")
		if err != nil {
			t.Fatal(err)
		}
		for num, data := range [][]byte{p1, p2, p3} {
			if err := up.PutPart(ctx, num+1, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := up.Complete(ctx, 2, store.PutOptions{}); err != nil {
			t.Fatalf("Complete(2): %v", err)
		}
		want := append(append([]byte{}, p1...), p2...)
		if got := readAll(t, s, bucket, "up/short"); !bytes.Equal(got, want) {
			t.Errorf("object is not parts 1 and 2")
		}
	})
	t.Run("conditional complete on a taken key", func(t *testing.T) {
		up, err := w.StartUpload(ctx, bucket, "up/obj")
		if err != nil {
			t.Fatal(err)
		}
		if err := up.PutPart(ctx, 1, bytes.NewReader(p3), int64(len(p3))); err != nil {
			t.Fatal(err)
		}
		if _, err := up.Complete(ctx, 1, store.PutOptions{IfAbsent: true}); !errors.Is(err, store.ErrExists) {
			t.Errorf("Complete(IfAbsent) over an object = %v, want ErrExists", err)
		}
		if err := up.Abort(ctx); err != nil {
			t.Errorf("Abort after a refused Complete: %v", err)
		}
	})
	t.Run("parts copied on the server from the object itself", func(t *testing.T) {
		// The append of bucketfs: the unchanged parts of the object being
		// replaced are copied from it (pinned to its ETag), the changed
		// last part is sent.
		base := append(append([]byte{}, p1...), p2...)
		old, err := w.PutIf(ctx, bucket, "up/copied", bytes.NewReader(base), int64(len(base)), store.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		up, err := w.StartUpload(ctx, bucket, "up/copied")
		if err != nil {
			t.Fatal(err)
		}
		if err := up.CopyPart(ctx, 1, "up/copied", old.ETag, 0, ps); err != nil {
			t.Fatalf("CopyPart(1): %v", err)
		}
		if err := up.CopyPart(ctx, 2, "up/copied", "", ps, 10); err != nil {
			t.Fatalf("CopyPart(2) unpinned: %v", err)
		}
		if err := up.CopyPart(ctx, 3, "up/copied", "0123456789abcdef0123456789abcdef", 0, ps); !errors.Is(err, store.ErrChanged) {
			t.Errorf("CopyPart pinned to another ETag = %v, want ErrChanged", err)
		}
		// Part 2 again, sent from the client this time: it replaces the copy.
		tail := append(append([]byte{}, p2...), p3...)
		if err := up.PutPart(ctx, 2, bytes.NewReader(tail), int64(len(tail))); err != nil {
			t.Fatal(err)
		}
		if _, err := up.Complete(ctx, 2, store.PutOptions{}); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		want := append(append([]byte{}, p1...), tail...)
		if got := readAll(t, s, bucket, "up/copied"); !bytes.Equal(got, want) {
			t.Errorf("object of copied and sent parts: %d bytes, want %d", len(got), len(want))
		}
	})
	t.Run("aborted", func(t *testing.T) {
		up, err := w.StartUpload(ctx, bucket, "up/aborted")
		if err != nil {
			t.Fatal(err)
		}
		if err := up.PutPart(ctx, 1, bytes.NewReader(p3), int64(len(p3))); err != nil {
			t.Fatal(err)
		}
		if err := up.Abort(ctx); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if _, err := up.Complete(ctx, 1, store.PutOptions{}); err == nil {
			t.Errorf("Complete after Abort succeeded")
		}
		if _, err := s.Stat(ctx, bucket, "up/aborted"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("aborted upload left an object: %v", err)
		}
	})
}
