package namespace

// Owner decides whose files and directories look to be: the mount's
// --uid and --gid, or, on a per-user mount (bucketfs mount --identity
// per-user), the user asking, since each user sees what their own
// identity may see, as theirs. The kernel keeps attributes per inode, for
// every user alike: a per-user mount keeps them for one clock tick
// (cmd/bucketfs/peruser.go), so each stat is answered for its caller.
type Owner struct {
	UID, GID uint32
	// Caller shows each request its caller's uid and gid.
	Caller bool
}

// Of returns the owner to show a request made by uid and gid (known:
// the request names its caller; the kernel's own requests may not).
func (o Owner) Of(uid, gid uint32, known bool) (uint32, uint32) {
	if o.Caller && known {
		return uid, gid
	}
	return o.UID, o.GID
}
