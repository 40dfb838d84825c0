package fusefs

// A corpus of hostile keys served by the in-memory store: nothing crashes,
// nothing outside the mount can be named, every visible file reads its own
// bytes, and each hidden key is logged once.

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bucketfs/bucketfs/namespace"
	"github.com/bucketfs/bucketfs/store/memstore"
)

// hostileKey is one key, the path it is shown at ("" when hidden) and, for
// hidden keys, the key the log names (the path up to the unusable segment).
type hostileKey struct {
	key, shown, logged string
}

var (
	long250 = strings.Repeat("s", 250)
	hostile = []hostileKey{
		{key: "sp ace.csv", shown: "sp ace.csv"},
		{key: " lead-space", shown: " lead-space"},
		{key: "trail-space ", shown: "trail-space "},
		{key: "ünï.txt", shown: "ünï.txt"},
		{key: "emoji-😀.txt", shown: "emoji-😀.txt"},
		{key: "nfc-\u00e9", shown: "nfc-\u00e9"},
		{key: "nfc-e\u0301", shown: "nfc-e\u0301"}, // NFD: another name
		{key: "pct%2Fslash%00", shown: "pct%2Fslash%00"},
		{key: "q?.txt", shown: "q?.txt"},
		{key: "star*.txt", shown: "star*.txt"},
		{key: "tab\tname", shown: "tab\tname"},
		{key: "new\nline", shown: "new\nline"},
		{key: "cr\rname", shown: "cr\rname"},
		{key: "ctl\x01\x02x", shown: "ctl\x01\x02x"},
		{key: "del\x7fx", shown: "del\x7fx"},
		{key: "esc\x1b[31m", shown: "esc\x1b[31m"},
		{key: `back\slash`, shown: `back\slash`},
		{key: "trailing.", shown: "trailing."},
		{key: "...", shown: "..."},
		{key: "-dash", shown: "-dash"},
		{key: "rtl\u202egnp.exe", shown: "rtl\u202egnp.exe"},
		{key: strings.Repeat("n", 255), shown: strings.Repeat("n", 255)},
		{key: "emptydir/", shown: "emptydir/"},
		{key: "m1/", shown: "m1/"},
		{key: "m1/m2/", shown: "m1/m2/"},
		// A file and a directory of one name.
		{key: "a", shown: "a" + namespace.ShadowSuffix},
		{key: "a/b", shown: "a/b"},
		{key: "k", shown: "k" + namespace.ShadowSuffix},
		{key: "k/", shown: "k/"},
		// ... whose shadow name a real key already has: the real key wins.
		{key: "c", logged: "c"},
		{key: "c" + namespace.ShadowSuffix, shown: "c" + namespace.ShadowSuffix},
		{key: "c/d", shown: "c/d"},
		// ... whose shadow name would be too long.
		{key: long250, logged: long250},
		{key: long250 + "/child", shown: long250 + "/child"},
		// Names that cannot be file names.
		{key: "//lead", logged: ""},
		{key: "x//y", logged: "x/"},
		{key: "../escape", logged: ".."},
		{key: "./here", logged: "."},
		{key: "d/../up", logged: "d/.."},
		{key: "d/./here", logged: "d/."},
		{key: "d/ok", shown: "d/ok"},
		{key: "tail/.", logged: "tail/."},
		{key: "tail/..", logged: "tail/.."},
		{key: strings.Repeat("n", 300), logged: strings.Repeat("n", 300)},
		{key: "dir300/" + strings.Repeat("m", 256) + "/f", logged: "dir300/" + strings.Repeat("m", 256)},
		{key: "bad\xffutf8", logged: "bad\xffutf8"},
		{key: "bad\xc3(", logged: "bad\xc3("},
		{key: "nul\x00byte", logged: "nul\x00byte"},
	}
)

func init() {
	scenarios["hostile"] = scenario{seed: func(ctx context.Context, mem *memstore.Store) error {
		if err := mem.CreateBucket(ctx, "hostile"); err != nil {
			return err
		}
		for _, k := range hostile {
			body := "key:" + k.key
			if strings.HasSuffix(k.key, "/") {
				body = ""
			}
			if _, err := mem.Put(ctx, "hostile", k.key, strings.NewReader(body), int64(len(body))); err != nil {
				return err
			}
		}
		return nil
	}}
}

func TestHostileKeys(t *testing.T) {
	c := mountScenario(t, "hostile")
	root := filepath.Join(c.mp, "hostile")

	// Walk twice: hidden keys are logged once however often they are met.
	var walked []string
	for pass := 0; pass < 2; pass++ {
		walked = walked[:0]
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Errorf("walk %q: %v", p, err)
				return nil
			}
			if p == root {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if !strings.HasPrefix(p, root+"/") || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("walk left the bucket: %q", p)
			}
			if n := d.Name(); n == "" || n == "." || n == ".." || len(n) > 255 || strings.ContainsAny(n, "\x00/") || !utf8.ValidString(n) {
				t.Errorf("directory entry %q is not a usable file name", d.Name())
			}
			if d.IsDir() {
				rel += "/"
			}
			walked = append(walked, rel)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, k := range hostile {
		if k.shown == "" {
			continue
		}
		// Every directory on the way is shown too.
		parts := strings.Split(strings.TrimSuffix(k.shown, "/"), "/")
		for i := 1; i < len(parts); i++ {
			want[strings.Join(parts[:i], "/")+"/"] = true
		}
		want[k.shown] = true
	}
	for _, dir := range []string{"x/", "d/", "tail/", "dir300/"} {
		want[dir] = true // shown, holding only what is hidden (or d/ok)
	}
	var wantList []string
	for p := range want {
		wantList = append(wantList, p)
	}
	sort.Strings(wantList)
	sort.Strings(walked)
	if strings.Join(walked, "|") != strings.Join(wantList, "|") {
		t.Errorf("walk =\n %q\nwant\n %q", walked, wantList)
	}

	// Each shown file reads the bytes of its own key.
	for _, k := range hostile {
		if k.shown == "" || strings.HasSuffix(k.shown, "/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, k.shown))
		if err != nil || string(b) != "key:"+k.key {
			t.Errorf("read %q = %q, %v; want the content of key %q", k.shown, b, err, k.key)
		}
	}
	// Hidden keys cannot be reached by any name.
	for _, name := range []string{"escape", "here", "up", "lead", "y", "c/../c", strings.Repeat("n", 300)} {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil && name != "c/../c" {
			t.Errorf("%q is reachable", name)
		}
	}

	// The log names each hidden key exactly once.
	logged := map[string]int{}
	for _, rec := range c.logLines(t) {
		if strings.HasPrefix(rec["msg"].(string), "key not shown") {
			logged[rec["key"].(string)]++
		}
	}
	for _, k := range hostile {
		if k.shown != "" {
			continue
		}
		if n := logged[jsonText(k.logged)]; n != 1 {
			t.Errorf("hidden key %q (logged as %q) logged %d times, want once", k.key, k.logged, n)
		}
		delete(logged, jsonText(k.logged))
	}
	if len(logged) > 0 {
		t.Errorf("unexpected hidden keys logged: %v", logged)
	}
	if !c.alive() {
		t.Fatal("the serving process died")
	}
}

// jsonText is s as it comes back from a JSON log line: each invalid UTF-8
// byte becomes U+FFFD.
func jsonText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
