package namespace

// Refresh forgets the cached metadata and listings of key (a file or a
// directory, no trailing "/") in bucket and of everything below it, so a
// change made by someone else shows at once instead of after the
// metadata TTL ("bucketfs refresh"). key "" is the whole bucket.
func (ns *NS) Refresh(bucket, key string) { ns.cache.Refresh(bucket, key) }
