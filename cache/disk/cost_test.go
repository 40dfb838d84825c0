package disk

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBlockFiles measures what writing and reading back 1 MiB blocks
// costs, in files of one block or of a run of four (as a GET brings them),
// O_DIRECT against the page cache, as CPU seconds (user and
// system) per GiB: the figure a cold read with the tier on pays beside the
// network's. The page cache is dropped before the reads when the
// benchmark may (root): the reads then come from the disk. The files go
// under TMPDIR, or BUCKETFS_DISK_BENCH_DIR.
//
//	go test -run '^$' -bench BlockFiles -benchtime 256x ./cache/disk
func BenchmarkBlockFiles(b *testing.B) {
	const bsize = 1 << 20
	data := aligned(bsize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	sum := Sum(data)
	for _, tc := range []struct {
		direct bool
		run    int
	}{{true, 1}, {true, 4}, {false, 1}, {false, 4}} {
		direct, run := tc.direct, tc.run
		b.Run(fmt.Sprintf("direct=%v/run=%d", direct, run), func(b *testing.B) {
			dir := b.TempDir()
			if d := os.Getenv("BUCKETFS_DISK_BENCH_DIR"); d != "" {
				var err error
				if dir, err = os.MkdirTemp(d, "bench"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
			}
			c, _, err := Open(Config{Dir: dir, Limit: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(b.Context())
			c.direct.Store(direct)
			k := func(i int) Key { return Key{Bucket: "b", Object: "o", ETag: "e", BlockSize: bsize, Index: int64(i)} }
			b.SetBytes(bsize)
			c0 := cpu()
			for i := 0; i < b.N; i += run {
				n := min(run, b.N-i)
				ks, datas, sums := make([]Key, n), make([][]byte, n), make([]uint32, n)
				for j := range n {
					ks[j], datas[j], sums[j] = k(i+j), data, sum
				}
				c.write(ks, datas, sums)
			}
			wrote := cpu() - c0
			b.StopTimer()
			syscall.Sync()
			_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
			dst := aligned(bsize)
			c0 = cpu()
			b.StartTimer()
			for i := range b.N {
				if _, ok := c.GetInto(b.Context(), k(i), dst); !ok {
					b.Fatalf("block %d not read back: %+v", i, c.Stats())
				}
			}
			read := cpu() - c0
			gib := float64(b.N) * bsize / (1 << 30)
			b.ReportMetric(wrote.Seconds()/gib, "write-cpu-s/GiB")
			b.ReportMetric(read.Seconds()/gib, "read-cpu-s/GiB")
		})
	}
}

// cpu is the CPU time this process has used.
func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
