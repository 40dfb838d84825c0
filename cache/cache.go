// Package cache owns what bucketfs remembers of the store, and only that:
// metadata, listings and blocks of object data, each bounded, kept true on
// writes by its Writer decorator. It sits between the namespace and the
// store, and keeps three kinds of state:
//
//   - listings: complete directory listings, so a second readdir, ls -l or
//     find costs no request, and a lookup of a name in a listed directory
//     neither;
//   - metadata: what a key is (file, directory, both, nothing) when its
//     directory's listing is not cached, from HeadObject/one-key LIST on a
//     miss; listings and these records share one byte bound (metastore.go);
//   - data: fixed-size blocks of object content keyed by bucket, key, ETag
//     and block number, in a byte-bounded LRU, with de-duplicated fetches and
//     sequential read-ahead.
//
// Time comes from Config.Now so TTL behaviour is testable with a fake clock.
package cache

import (
	"context"
	"log/slog"
	"time"

	"github.com/bucketfs/bucketfs/cache/disk"
	"github.com/bucketfs/bucketfs/store"
)

// Config holds the knobs of the cache. Zero values take the defaults below.
type Config struct {
	// DataBytes bounds the block cache in bytes (--cache-size).
	DataBytes int64
	// BlockSize is the unit of caching and of the smallest ranged GET.
	BlockSize int64
	// MetadataTTL is how long metadata and listings are trusted (--metadata-ttl).
	MetadataTTL time.Duration
	// NegativeTTL is how long "no such key" is trusted.
	NegativeTTL time.Duration
	// MetadataBytes bounds the memory of the metadata cache, listings and
	// per-name records together, in bytes (--metadata-cache-size).
	MetadataBytes int64
	// MaxRequests bounds GET requests in flight across the whole mount.
	MaxRequests int
	// MaxInflightBytes bounds the bytes of GETs in flight (memory beyond
	// DataBytes that reads may use).
	MaxInflightBytes int64
	// MaxReadAhead bounds how far ahead of a sequential reader blocks are fetched.
	MaxReadAhead int64
	// MaxRunBlocks is the most blocks one ranged GET fetches.
	MaxRunBlocks int
	// RequestTimeout bounds one store call with its retries (a HEAD, a page
	// of a listing, a GET of a run of blocks): past it the operation fails
	// with EIO instead of waiting on an unreachable server.
	RequestTimeout time.Duration
	// StallTimeout cuts a GET whose body makes no progress for this long;
	// the blocks not yet received are fetched again.
	StallTimeout time.Duration
	// ListPageSize is MaxKeys for directory listings; 0 means the server's
	// default (1,000 on S3).
	ListPageSize int
	// Disk is the second tier of the block cache (--disk-cache), or nil:
	// asked on a miss before a GET, handed every block fetched.
	Disk *disk.Cache
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives debug lines about cache decisions.
	Logger *slog.Logger
	// Scope, if set, names the identity a request (its context) is made
	// for; metadata is then kept per identity (scope.go). An error (no
	// identity) fails the request before the cache or store is asked.
	Scope func(ctx context.Context) (string, error)
}

// Defaults used for zero fields of Config.
const (
	DefaultDataBytes        = 512 << 20
	DefaultBlockSize        = 1 << 20
	DefaultMetadataTTL      = 60 * time.Second
	DefaultNegativeTTL      = 5 * time.Second
	DefaultMetadataBytes    = 128 << 20
	DefaultMaxRequests      = 64
	DefaultMaxReadAhead     = 256 << 20
	DefaultMaxInflightBytes = 256 << 20
	DefaultMaxRunBlocks     = 4
	DefaultRequestTimeout   = time.Minute
	DefaultStallTimeout     = 15 * time.Second
)

func (c Config) withDefaults() Config {
	if c.DataBytes <= 0 {
		c.DataBytes = DefaultDataBytes
	}
	if c.BlockSize <= 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.MetadataTTL <= 0 {
		c.MetadataTTL = DefaultMetadataTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.NegativeTTL > c.MetadataTTL {
		c.NegativeTTL = c.MetadataTTL
	}
	if c.MetadataBytes <= 0 {
		c.MetadataBytes = DefaultMetadataBytes
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = DefaultMaxRequests
	}
	if c.MaxReadAhead <= 0 {
		c.MaxReadAhead = DefaultMaxReadAhead
	}
	if c.MaxInflightBytes <= 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.MaxRunBlocks <= 0 {
		c.MaxRunBlocks = DefaultMaxRunBlocks
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Cache is the caching layer over one ObjectStore. It is safe for concurrent use.
type Cache struct {
	cfg   Config
	store store.ObjectStore
	meta  *metaCache // the one identity's, or nobody's with Config.Scope
	sc    scopes     // per identity, with Config.Scope
	data  *blockCache
	pre   *prefetcher
	// streams are the open Readers by object (read-ahead stops at another
	// reader's run).
	streams streams

	// ctx is the parent of the work the cache does in the background
	// (fetches of blocks, de-duplicated lookups, listings in advance);
	// Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
}

// New builds a cache over s. Close it when the mount ends.
func New(s store.ObjectStore, cfg Config) *Cache {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{
		cfg:    cfg,
		store:  s,
		meta:   newMetaCache(ctx, s, cfg),
		data:   newBlockCache(ctx, s, cfg),
		pre:    newPrefetcher(),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Close stops the work the cache does in the background: fetches and
// listings under way end with context.Canceled, and their waiters with
// them. It then drops what the cache holds. The cache must not be used
// afterwards.
func (c *Cache) Close() {
	c.cancel()
	c.meta.close()
	c.data.lru.Purge()
}

// Store is the store under the cache, for requests that cache nothing.
func (c *Cache) Store() store.ObjectStore { return c.store }

// Config returns the effective configuration (defaults filled in).
func (c *Cache) Config() Config { return c.cfg }

// ReceiveBytes bounds the memory of GETs in flight beyond DataBytes: the
// bytes of the blocks being received. Each GET fills one block at a time
// and hands it to the cache as soon as it is full, so this is one block
// per GET in flight, and never more than the in-flight budget. Call it on
// a Config with defaults applied (Cache.Config).
func (c Config) ReceiveBytes() int64 {
	return min(c.MaxInflightBytes, int64(c.MaxRequests)*c.BlockSize)
}
