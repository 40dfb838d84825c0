package namespace

import (
	"context"
	"fmt"

	"github.com/bucketfs/bucketfs/stage"
	"github.com/bucketfs/bucketfs/store"
)

// Writes on a mount of many identities (Config.Identities, bucketfs mount
// --identity per-user). Every change has an writer, the user who made the
// request; what the namespace keeps of a change is that writer's alone:
//
//   - a file being written (created, or opened for writing, and not yet
//     uploaded, or whose upload failed) is in the registry under its
//     writer: only the writer's lookups and listings find it, only the
//     writer's opens reach its staged bytes. Every other user sees what S3
//     shows their own identity (the old object, or nothing) until the
//     upload, and then the new object, asked of S3 with their own
//     identity (the cache's writer makes them forget the name);
//   - a file opened for writing over an object gets an inode of its own
//     for its writer's later lookups: the object's inode, which the kernel
//     shares between users, stays that version's, and its page cache
//     holds only that version's bytes (writers bypass it);
//   - its uploads, at whatever close, fsync or unmount, and the parts sent
//     in the background are signed as the writer (Identity.Ctx), and its bytes
//     staged in the writer's own directory (stage.Area.For);
//   - the delete guard remembers what each writer wrote: a user deletes
//     without --allow-delete only what they wrote through the mount;
//   - an upload S3 refuses for the writer (access denied) drops the file:
//     the close (and any later write or close of it) fails with EACCES,
//     the name is no longer listed, and nothing is retried or kept.

// Identity is who a change is made for on a mount of many identities.
type Identity struct {
	// Key names the writer ("" on a mount of one identity): a Linux user,
	// not an AWS identity (cmd/bucketfs's "uid N"; identity/caller.go says
	// why the cache's scope is another key).
	Key string
	// UID and GID own the writer's staging directory and files
	// (stage.Area.For); Name names the user in its log lines.
	UID, GID uint32
	Name     string
	// Ctx carries the writer's identity (its values; it is never
	// cancelled) to what is done for a file after the request that
	// changed it: an upload at a later close or at unmount, parts sent
	// in the background.
	Ctx context.Context
}

// ErrOtherWriter: a file being written by another user (EACCES). Only
// reachable through a descriptor or inode that user passed on.
var ErrOtherWriter = fmt.Errorf("file being written by another user: %w", store.ErrAccessDenied)

// scoped reports whether the namespace serves many identities.
func (ns *NS) scoped() bool { return ns.cfg.Identities != nil }

// caller resolves the caller of ctx once, for a whole request: ctx then
// carries the resolution (Config.Identities), for the cache's scope and
// every later call of the request. On a mount of one identity it is ctx
// and Identity{}.
func (ns *NS) caller(ctx context.Context) (context.Context, Identity, error) {
	if ns.cfg.Identities == nil {
		return ctx, Identity{}, nil
	}
	return ns.cfg.Identities(ctx)
}

// identityKey is the registry key of the caller of ctx ("\x00none" when it
// has none: it then finds no file being written).
func (ns *NS) identityKey(ctx context.Context) string {
	_, o, err := ns.caller(ctx)
	if err != nil {
		return "\x00none"
	}
	return o.Key
}

// ctx returns ctx signed as w's writer: ctx's cancellation, the writer's
// identity.
func (w *wfile) ctx(ctx context.Context) context.Context {
	if w.id.Ctx == nil {
		return ctx
	}
	return valuesCtx{Context: ctx, vals: w.id.Ctx}
}

// area is where w's bytes are staged: the writer's own directory on a
// mount of many identities.
func (w *wfile) area() (*stage.Area, error) {
	if !w.ns.scoped() {
		return w.ns.cfg.Staging, nil
	}
	return w.ns.cfg.Staging.For(stage.Owner{UID: w.id.UID, GID: w.id.GID, Name: w.id.Name, Ctx: w.id.Ctx})
}

// mayUse checks that the caller of ctx owns w (always, on a mount of one
// identity).
func (w *wfile) mayUse(ctx context.Context) error {
	if !w.ns.scoped() || w.ns.identityKey(ctx) == w.id.Key {
		return nil
	}
	return ErrOtherWriter
}

// valuesCtx ends with its Context and takes its values from vals.
type valuesCtx struct {
	context.Context
	vals context.Context
}

func (v valuesCtx) Value(key any) any { return v.vals.Value(key) }

// refuse drops w after S3 refused its writer's upload: the name is no
// longer the writer's file being written, nothing is retried, and its
// staged bytes go with the last handle. err (access denied) is what this
// close and every later write, close or fsync of w return.
func (w *wfile) refuse(err error) error {
	bucket, key := w.name()
	err = w.dropFor(fmt.Errorf("upload %s/%s refused for this user: %w (%w)", bucket, key, err, ErrDropped))
	w.ns.log.Warn("upload refused by S3 for the writer's identity: the file is dropped (EACCES)",
		"bucket", bucket, "key", key, "writer", w.id.Key, "err", err)
	return err
}

// refusedErr is the error w was dropped with (refuse, abandon: dropFor),
// nil while it is not.
func (w *wfile) refusedErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}
