package namespace

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// safeName is what every name the mount shows must be: a single, legal,
// non-special path component.
func safeName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxName &&
		!strings.ContainsAny(name, "/\x00") && utf8.ValidString(name)
}

// FuzzNames: usable and validBucketName never accept a name that is not a
// safe path component, and the shadow name of a usable name is safe when
// it fits and maps back to the name.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"", ".", "..", "...", "/", "a/b", "\x00", "nul\x00", "\xff", "bad\xc3(", "ok.txt",
		"sp ace", "tab\t", strings.Repeat("x", 255), strings.Repeat("x", 256), strings.Repeat("é", 128),
		"my-bucket", ".Trash", "-x", "ab", "a..b", "A_B", strings.Repeat("b", 63), strings.Repeat("b", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if usable(name) && !safeName(name) {
			t.Fatalf("usable(%q) but it is not a safe file name", name)
		}
		if !usable(name) && safeName(name) {
			t.Fatalf("usable(%q) = false for a safe name", name)
		}
		if validBucketName(name) && (!safeName(name) || len(name) < 3 || len(name) > 63) {
			t.Fatalf("validBucketName(%q) for a name that cannot be a bucket directory", name)
		}
		if !usable(name) {
			if whyUnusable(name) == "" {
				t.Fatalf("no reason given for hiding %q", name)
			}
			return
		}
		shadow := name + ShadowSuffix
		if len(shadow) <= maxName && (!safeName(shadow) || strings.TrimSuffix(shadow, ShadowSuffix) != name) {
			t.Fatalf("shadow name %q of %q is not safe or does not map back", shadow, name)
		}
	})
}

// FuzzReaddir lists a directory of up to four arbitrary keys through the
// namespace: every name it yields is a safe path
// component and no name comes twice.
func FuzzReaddir(f *testing.F) {
	f.Add("a", "a/b", "a"+ShadowSuffix, "c")
	f.Add("x//y", "../up", "./here", "d/../e")
	f.Add("k/", "k", "k/"+strings.Repeat("m", 300), "\xff")
	f.Add(strings.Repeat("s", 250), strings.Repeat("s", 250)+"/c", "q", "q/")
	f.Add("nul\x00", "/lead", "tail/.", "tail/..")
	f.Fuzz(func(t *testing.T, k1, k2, k3, k4 string) {
		ctx := context.Background()
		mem := memstore.New()
		mem.CreateBucket(ctx, "b")
		for _, k := range []string{k1, k2, k3, k4} {
			if k != "" {
				mem.Put(ctx, "b", k, strings.NewReader(k), int64(len(k)))
			}
		}
		c := cache.New(mem, cache.Config{ListPageSize: 2})
		ns := New(c, Config{Logger: discard()})
		// Walk the root and each directory it shows, twice (the second
		// time from the cached listing, which orders entries otherwise).
		dirs := []string{""}
		for pass := 0; pass < 2; pass++ {
			for i := 0; i < len(dirs) && i < 20; i++ {
				l := ns.Dir("b", dirs[i]).List()
				seen := map[string]bool{}
				for {
					e, ok, err := l.Next(ctx)
					if err != nil {
						t.Fatalf("list %q: %v", dirs[i], err)
					}
					if !ok {
						break
					}
					if !safeName(e.Name) {
						t.Fatalf("list %q yields unsafe name %q", dirs[i], e.Name)
					}
					if seen[e.Name] {
						t.Fatalf("list %q yields %q twice", dirs[i], e.Name)
					}
					seen[e.Name] = true
					if pass == 0 && e.Dir != nil {
						dirs = append(dirs, e.Dir.Prefix())
					}
				}
			}
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
