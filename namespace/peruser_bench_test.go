package namespace

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/cache"
	"github.com/bucketfs/bucketfs/identity"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// BenchmarkWalk is what a warm ls -lR asks of the namespace, without FUSE:
// for every file a LOOKUP of its bucket, its directory and itself, and the
// directory read once per walk; on a mount of one identity and on a
// per-user mount whose caller is resolved by a real identity.Set (as
// bucketfs mount --identity per-user does, cmd/bucketfs/peruser.go).
// Compare allocs/op and ns/op between the two; one op is one LOOKUP.
func BenchmarkWalk(b *testing.B) {
	const files = 1000
	for _, perUser := range []bool{false, true} {
		name := map[bool]string{false: "one-identity", true: "per-user"}[perUser]
		ns, ctx := walkFixture(b, perUser, files)
		root := ns.Root("", "")
		names := make([]string, files)
		for i := range names {
			names[i] = fmt.Sprintf("f%04d", i)
		}
		b.Run(name+"/lookup", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var err error
				switch i % 3 {
				case 0:
					_, err = root.Lookup(ctx, "bkt")
				case 1:
					_, err = ns.Dir("bkt", "").Lookup(ctx, "dir")
				default:
					_, err = ns.Dir("bkt", "dir/").Lookup(ctx, names[i/3%files])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/readdir", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l := ns.Dir("bkt", "dir/").List()
				n := 0
				for {
					_, ok, err := l.Next(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if !ok {
						break
					}
					n++
				}
				if n != files {
					b.Fatalf("listed %d of %d", n, files)
				}
			}
		})
	}
}

// walkFixture is a namespace over bkt/dir/f0000... (files of them), warm,
// and the context of alice's requests.
func walkFixture(b *testing.B, perUser bool, files int) (*NS, context.Context) {
	b.Helper()
	ctx := context.Background()
	mem := memstore.New()
	if err := mem.CreateBucket(ctx, "bkt"); err != nil {
		b.Fatal(err)
	}
	for i := range files {
		if _, err := mem.Put(ctx, "bkt", fmt.Sprintf("dir/f%04d", i), bytes.NewReader([]byte("x")), 1); err != nil {
			b.Fatal(err)
		}
	}
	var cc cache.Config
	var nc Config
	if perUser {
		if os.Geteuid() != 0 {
			b.Skip("needs root: a root-owned rules file")
		}
		rules := filepath.Join(b.TempDir(), "ids.conf")
		if err := os.WriteFile(rules, []byte("user alice host\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		set, err := identity.New(identity.Options{Path: rules,
			Host:   aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", "")},
			Users:  func(uid uint32) (identity.User, error) { return identity.User{Name: "alice", UID: uid, GID: uid}, nil },
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		cc.Scope = set.Scope
		nc.Identities = func(ctx context.Context) (context.Context, Identity, error) {
			ctx, p, err := set.Within(ctx)
			if err != nil {
				return ctx, Identity{}, err
			}
			return ctx, Identity{Key: p.Owner, UID: p.User.UID, GID: p.User.GID, Ctx: p.Background}, nil
		}
		ctx = identity.WithCaller(ctx, identity.Caller{UID: 1001, GID: 1001})
	}
	c := cache.New(mem, cc)
	b.Cleanup(c.Close)
	ns := New(c, nc)
	l := ns.Dir("bkt", "dir/").List()
	for {
		if _, ok, err := l.Next(ctx); err != nil || !ok {
			if err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	return ns, ctx
}
