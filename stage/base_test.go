package stage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
)

// TestCreateOver: a file staged over an object fetches only the parts a
// change or a read touches, and the upload copies the others on the
// server.
func TestCreateOver(t *testing.T) {
	const ps = store.MinPartSize
	orig := pseudo(3*ps + 1000)
	line := []byte("one more line\n")
	tests := []struct {
		name    string
		limit   int64
		change  func(ctx context.Context, f *File) error
		want    func() []byte
		create  int // the object's size, if not all of orig
		err     error
		fetched int64 // bytes the fill fetched, change and upload
		copied  int64 // CopyPart calls
		put     int64 // PutPart (or Put) calls
	}{
		{
			name:    "append a line",
			change:  func(ctx context.Context, f *File) error { _, err := f.Write(ctx, line, int64(len(orig))); return err },
			want:    func() []byte { return append(append([]byte(nil), orig...), line...) },
			fetched: 1000, copied: 3, put: 1,
		},
		{
			name:    "append at a part boundary: nothing fetched",
			change:  func(ctx context.Context, f *File) error { _, err := f.Write(ctx, line, 3*ps); return err },
			want:    func() []byte { return append(append([]byte(nil), orig[:3*ps]...), line...) },
			create:  3 * ps,
			fetched: 0, copied: 3, put: 1,
		},
		{
			name:    "overwrite in the middle",
			change:  func(ctx context.Context, f *File) error { _, err := f.Write(ctx, []byte("XYZ"), ps+ps/2); return err },
			want:    func() []byte { b := append([]byte(nil), orig...); copy(b[ps+ps/2:], "XYZ"); return b },
			fetched: ps, copied: 3, put: 1,
		},
		{
			name:   "truncate inside a part",
			change: func(ctx context.Context, f *File) error { return f.Resize(ctx, 2*ps+5) },
			want:   func() []byte { return orig[:2*ps+5] },
			copied: 3,
		},
		{
			name:    "grow past the end",
			change:  func(ctx context.Context, f *File) error { return f.Resize(ctx, int64(len(orig))+10) },
			want:    func() []byte { return append(append([]byte(nil), orig...), make([]byte, 10)...) },
			fetched: 1000, copied: 3, put: 1,
		},
		{
			name:    "truncate below the threshold: one PutObject",
			change:  func(ctx context.Context, f *File) error { return f.Resize(ctx, 100) },
			want:    func() []byte { return orig[:100] },
			fetched: 100, put: 1,
		},
		{
			name: "read a part",
			change: func(ctx context.Context, f *File) error {
				p := make([]byte, 10)
				if _, err := f.Read(ctx, p, 2*ps+1); err != nil {
					return err
				}
				if !bytes.Equal(p, orig[2*ps+1:2*ps+11]) {
					t.Errorf("read %q, want the object's bytes", p)
				}
				return nil
			},
			want:    func() []byte { return orig },
			fetched: ps, copied: 3, put: 1,
		},
		{
			name:    "staging full: nothing fetched",
			limit:   ps / 2,
			change:  func(ctx context.Context, f *File) error { _, err := f.Write(ctx, []byte("X"), 10); return err },
			err:     syscall.ENOSPC,
			fetched: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fx := newFixture(t, Config{PartSize: ps, Threshold: ps, Limit: tt.limit})
			obj := orig
			if tt.create > 0 {
				obj = orig[:tt.create]
			}
			o, err := fx.mem.Put(ctx, "b", "k", bytes.NewReader(obj), int64(len(obj)))
			if err != nil {
				t.Fatal(err)
			}
			var fetched atomic.Int64
			f, err := fx.area.CreateOver("k", "k", o.ETag, o.Size, fx.fill(&fetched))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Remove()
			if err := tt.change(ctx, f); !errors.Is(err, tt.err) {
				t.Fatalf("change: %v, want %v", err, tt.err)
			}
			if tt.err == nil {
				if _, err := f.Upload(ctx, "b", "k", store.PutOptions{}); err != nil {
					t.Fatalf("upload: %v", err)
				}
			}
			if got := fetched.Load(); got != tt.fetched {
				t.Errorf("fetched %d bytes, want %d", got, tt.fetched)
			}
			if tt.err != nil {
				return
			}
			if got := fx.object(t, "k"); !bytes.Equal(got, tt.want()) {
				t.Errorf("object: %d bytes, want %d (differ)", len(got), len(tt.want()))
			}
			if got := fx.fs.Count(faultstore.OpCopyPart); got != tt.copied {
				t.Errorf("%d parts copied on the server, want %d", got, tt.copied)
			}
			if got := fx.fs.Count(faultstore.OpPutPart) + fx.fs.Count(faultstore.OpPut); got != tt.put {
				t.Errorf("%d parts or objects sent, want %d", got, tt.put)
			}
			// A second change after the upload copies from the new object.
			fx.fs.Reset()
			if _, err := f.Write(ctx, line, f.Size()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Upload(ctx, "b", "k", store.PutOptions{}); err != nil {
				t.Fatalf("second upload: %v", err)
			}
			if got, want := fx.object(t, "k"), append(tt.want(), line...); !bytes.Equal(got, want) {
				t.Errorf("object after a second append: %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// TestCreateOverReplaced: when the object is replaced before the upload,
// the server-side copies fail with ErrChanged and nothing is stored.
func TestCreateOverReplaced(t *testing.T) {
	const ps = store.MinPartSize
	ctx := context.Background()
	fx := newFixture(t, Config{PartSize: ps, Threshold: ps})
	orig := pseudo(2*ps + 1)
	o, _ := fx.mem.Put(ctx, "b", "k", bytes.NewReader(orig), int64(len(orig)))
	f, err := fx.area.CreateOver("k", "k", o.ETag, o.Size, fx.fill(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	if _, err := f.Write(ctx, []byte("x"), o.Size); err != nil {
		t.Fatal(err)
	}
	fx.mem.Put(ctx, "b", "k", bytes.NewReader([]byte("theirs")), 6)
	if _, err := f.Upload(ctx, "b", "k", store.PutOptions{}); !errors.Is(err, store.ErrChanged) {
		t.Errorf("upload over a replaced object: %v, want ErrChanged", err)
	}
	if got := fx.object(t, "k"); string(got) != "theirs" {
		t.Errorf("object %q, want the other writer's", got)
	}
}

// pseudo returns n bytes that differ from part to part.
// fill fetches the parts CreateOver asks for from the fixture's store,
// bucket "b", counting the bytes in fetched when it is not nil.
func (fx fixture) fill(fetched *atomic.Int64) Fill {
	return func(ctx context.Context, key, etag string, off, size int64, w io.WriterAt) error {
		if fetched != nil {
			fetched.Add(size)
		}
		p := make([]byte, size)
		if _, err := fx.mem.ReadAt(ctx, "b", key, etag, p, off); err != nil && err != io.EOF {
			return err
		}
		_, err := w.WriteAt(p, off)
		return err
	}
}

func pseudo(n int) []byte {
	b := make([]byte, n)
	x := uint32(12345)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
