// Package units parses and prints byte sizes the way every bucketfs
// command line takes them: 512MiB, 2GiB, 1.5G, 100M, 64k, 1GB, 4096.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// suffixes are checked in order, so longer ones come first. Binary units
// (KiB, and the bare K, M, G, T of tools like dd) are powers of 1024; the
// SI ones (kB, MB, GB, TB) powers of 1000. Case does not matter.
var suffixes = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1},
}

// maxSize keeps products clear of int64 overflow.
const maxSize = 1 << 62

// ParseSize reads a size with an optional unit. Fractions are allowed
// (1.5GiB); negative sizes and sizes past 4 EiB are not.
func ParseSize(v string) (int64, error) {
	num, mult := strings.ToLower(strings.TrimSpace(v)), int64(1)
	for _, u := range suffixes {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	bad := fmt.Errorf("%q is not a size: use a number of bytes or units like 512MiB, 2GiB", v)
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 || (n > 0 && mult > maxSize/n) {
			return 0, bad
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*float64(mult) > maxSize {
		return 0, bad
	}
	return int64(f * float64(mult)), nil
}

// FormatSize prints n in the largest binary unit that divides it exactly.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return strconv.FormatInt(n, 10)
}
