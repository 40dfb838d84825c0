package cache

// Refresh forgets what the cache knows of key (no trailing "/") in bucket
// and of everything below it: the record of the name, the listing that
// holds it, its own listing and those of every directory under it. The
// next look at any of them asks the store. key "" is the whole bucket.
// Blocks of data need no forgetting: they are keyed by ETag.
func (c *Cache) Refresh(bucket, key string) {
	if key == "" {
		for _, m := range c.metas() {
			m.lru.removeIf(under(m.scope, bucket, ""))
		}
		return
	}
	c.forgetTree(bucket, key)
}
