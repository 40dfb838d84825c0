package cache

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/bucketfs/bucketfs/store"
)

// Reading the files of a directory one after another (cat dir/*, R's
// lapply(list.files(...), read.csv), a partitioned data set) costs a round
// trip per file unless the next files are on their way before they are
// opened. The cache watches the order in which files of a directory are
// opened; once two are opened in listing order it fetches the next ones
// (whole, or their first run of blocks for larger files), more the longer
// the streak lasts.

const (
	// prefetchMaxFiles bounds how many files ahead of the reader are fetched.
	prefetchMaxFiles = 32
	// prefetchDirs bounds how many directories' streaks are remembered.
	prefetchDirs = 256
)

// dirStreak is the reading order seen in one directory.
type dirStreak struct {
	last    int // listing index of the file opened last
	streak  int // files opened in listing order in a row
	fetched int // listing index up to which prefetch has been requested
}

type prefetcher struct {
	mu      sync.Mutex
	streaks *lru.Cache[string, *dirStreak]
}

func newPrefetcher() *prefetcher {
	l, _ := lru.New[string, *dirStreak](prefetchDirs)
	return &prefetcher{streaks: l}
}

// prefetchSiblings is called on every open. It costs nothing unless the
// directory's listing is cached and files are being opened in its order.
func (c *Cache) prefetchSiblings(bucket string, obj store.Object) {
	prefix := parentPrefix(obj.Key)
	l := c.meta.freshListing(bucket, prefix)
	if l == nil {
		return
	}
	idx, ok := l.index[obj.Key[len(prefix):]]
	if !ok {
		return
	}
	var todo []store.Object
	c.pre.mu.Lock()
	k := mkey(bucket, prefix)
	s, ok := c.pre.streaks.Get(k)
	if !ok {
		s = &dirStreak{last: -1 << 30}
		c.pre.streaks.Add(k, s)
	}
	// Shell globs sort by locale, listings by bytes: allow small skips.
	if idx > s.last && idx <= s.last+3 {
		s.streak++
	} else {
		s.streak, s.fetched = 0, idx
	}
	s.last = idx
	if s.streak > 0 {
		ahead := min(2<<min(s.streak, 5), prefetchMaxFiles)
		budget := min(c.cfg.MaxInflightBytes/2, c.cfg.DataBytes/8)
		var bytes int64
		for i := max(s.fetched+1, idx+1); i < len(l.entries) && i <= idx+ahead; i++ {
			e := l.entries[i]
			if e.Kind != KindFile {
				s.fetched = i
				continue
			}
			n := min(e.Object.Size, runBytes(c.cfg))
			if bytes+n > budget {
				break
			}
			bytes += n
			todo = append(todo, e.Object)
			s.fetched = i
		}
	}
	c.pre.mu.Unlock()

	bs := c.cfg.BlockSize
	for _, o := range todo {
		if o.Size == 0 {
			continue
		}
		blocks := (min(o.Size, runBytes(c.cfg)) + bs - 1) / bs
		c.data.request(object{bucket: bucket, key: o.Key, etag: o.ETag, size: o.Size}, 0, blocks-1, false)
	}
}

func runBytes(cfg Config) int64 { return int64(cfg.MaxRunBlocks) * cfg.BlockSize }
