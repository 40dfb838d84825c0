package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The delete guard (docs/SEMANTICS.md, "Deletes: the guard"): with default
// flags "rm -rf" of a mount deletes nothing that existed before, the
// mount's own files can be renamed and removed (from the shell and from
// R), and --allow-delete deletes existing objects.

// guardHint is the start of the one warning a mount logs when it refuses
// a delete.
const guardHint = "delete refused (Operation not permitted)"

// guardSeed is what each bucket of these tests holds: files at two depths
// and an empty directory (a "dir/" marker).
func guardSeed() map[string][]byte {
	return map[string][]byte{
		"top.csv": []byte("a,b\n1,2\n"), "data/one.csv": []byte("1\n"), "data/deep/two.csv": []byte("2\n"),
		"empty/": nil,
	}
}

// TestDeleteGuardRmRf: rm -rf of an all-buckets mount with default flags
// fails with "Operation not permitted", every object on the server stays,
// and the log says once how to enable deletes; the same on a shared
// (--allow-other) mount that lets another user try.
func TestDeleteGuardRmRf(t *testing.T) {
	s := need(t)
	a, b := s.bucket("guard-a"), s.bucket("guard-b")
	s.seedBuckets(t, map[string]map[string][]byte{a: guardSeed(), b: guardSeed()})
	before := s.s3.inventory(t)
	if len(before[a]) != 4 || len(before[b]) != 4 {
		t.Fatalf("seeded %v / %v, want 4 objects in each", before[a], before[b])
	}

	rmrf := func(t *testing.T, user, mp, logFile string) {
		t.Helper()
		args := []string{"rm", "-rf", mp}
		if user != "" {
			args = append([]string{"runuser", "-u", user, "--"}, args...)
		}
		mark := s.log.mark(t)
		r := s.exec(t, 5*time.Minute, nil, args[0], args[1:]...)
		ops := s.log.count(t, mark, "")
		t.Logf("rm -rf took %v; requests: %v", r.took.Round(time.Millisecond), ops)
		if ops["DeleteObject"]+ops["DeleteObjects"]+ops["CopyObject"] != 0 {
			t.Errorf("rm -rf sent deletes or copies: %v", ops)
		}
		if r.err == nil {
			t.Errorf("rm -rf %s succeeded", mp)
		}
		if !strings.Contains(r.stderr, "Operation not permitted") {
			t.Errorf("rm -rf said %q, want Operation not permitted", clip(r.stderr))
		}
		if after := s.s3.inventory(t); !equalInventory(before, after) {
			t.Errorf("objects on the server changed:\nbefore %v\nafter  %v", before, after)
		}
		if got := s.must(t, time.Minute, "cat", filepath.Join(mp, a, "data", "deep", "two.csv")); got != "2\n" {
			t.Errorf("through the mount after rm -rf: %q", got)
		}
		logged, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(logged), guardHint); n != 1 {
			t.Errorf("the hint is logged %d times, want once:\n%s", n, clip(string(logged)))
		}
		if !strings.Contains(string(logged), "--allow-delete") || !strings.Contains(string(logged), "allow_delete") {
			t.Errorf("the log does not say how to enable deletes")
		}
	}

	t.Run("all buckets", func(t *testing.T) {
		mp := s.mountDir(t)
		logFile := s.mountAt(t, mp, "")
		rmrf(t, "", mp, logFile)
	})
	t.Run("allow-other, another user", func(t *testing.T) {
		u := needUsers(t, otherUser)[0]
		mp := filepath.Join(sharedDir(t, s, "guard"), "mnt")
		if err := os.Mkdir(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		// Modes that let every user change anything: only the guard stands
		// between them and the buckets.
		logFile := s.mountAt(t, mp, "", "--allow-other", "--file-mode", "0666", "--dir-mode", "0777")
		rmrf(t, u.name, mp, logFile)
	})
}

// TestDeleteGuardOwnFiles: without flags, what the mount wrote can be
// renamed and removed, from the shell and from R, while existing objects
// cannot; with --allow-delete they can.
func TestDeleteGuardOwnFiles(t *testing.T) {
	s := need(t)
	bkt := s.bucket("guard-own")
	s.seedBuckets(t, map[string]map[string][]byte{bkt: guardSeed()})
	mp := s.mount(t, "s3://"+bkt, "--cache-dir", t.TempDir())
	p := func(rel string) string { return filepath.Join(mp, rel) }

	t.Run("shell", func(t *testing.T) {
		s.must(t, time.Minute, "sh", "-c", "echo scratch > "+p("scratch.txt"))
		s.must(t, time.Minute, "mv", p("scratch.txt"), p("data/scratch2.txt"))
		s.must(t, time.Minute, "rm", p("data/scratch2.txt"))
		// (A directory made by mkdir is not renamed here: versitygw's
		// POSIX backend refuses to copy directory markers. fs/ tests it.)
		s.must(t, time.Minute, "mkdir", "-p", p("work/sub"))
		s.must(t, time.Minute, "cp", p("top.csv"), p("work/sub/copy.csv"))
		s.must(t, time.Minute, "mv", p("work/sub/copy.csv"), p("work/moved.csv"))
		s.must(t, time.Minute, "rm", "-rf", p("work"))
		for _, k := range []string{"scratch.txt", "data/scratch2.txt", "work/", "work/sub/", "work/sub/copy.csv", "work/moved.csv"} {
			if s.s3.exists(t, bkt, k) {
				t.Errorf("%s still on the server", k)
			}
		}
		for _, cmd := range [][]string{
			{"rm", p("top.csv")},
			{"mv", p("data/one.csv"), p("one.csv")},
			{"rmdir", p("empty")},
			{"rm", "-rf", p("data")},
		} {
			r := s.exec(t, time.Minute, nil, cmd[0], cmd[1:]...)
			if r.err == nil || !strings.Contains(r.stderr, "Operation not permitted") {
				t.Errorf("%q on existing objects: %v, %q; want Operation not permitted", cmd, r.err, r.stderr)
			}
		}
		if got := s.s3.inventory(t)[bkt]; strings.Join(got, " ") != "data/deep/two.csv data/one.csv empty/ top.csv" {
			t.Errorf("objects after the refused deletes: %q", got)
		}
	})

	t.Run("R", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "guard.R")
		if err := os.WriteFile(script, []byte(rGuard), 0o644); err != nil {
			t.Fatal(err)
		}
		r := s.exec(t, 5*time.Minute, nil, "Rscript", script, mp)
		if r.err != nil || !strings.Contains(r.stdout, "R-GUARD-OK") {
			t.Fatalf("R: %v\n%s%s", r.err, r.stdout, clip(r.stderr))
		}
		if got := string(s.s3.object(t, bkt, "results/final.rds")); got == "" {
			t.Errorf("results/final.rds is empty or missing")
		}
		for _, k := range []string{"results/tmp.rds", "results/session.csv", "results/scratch/"} {
			if s.s3.exists(t, bkt, k) {
				t.Errorf("%s still on the server", k)
			}
		}
		if !s.s3.exists(t, bkt, "top.csv") || !s.s3.exists(t, bkt, "data/one.csv") {
			t.Errorf("R removed an existing object")
		}
	})

	t.Run("allow-delete", func(t *testing.T) {
		mp := s.mount(t, "s3://"+bkt, "--allow-delete", "--cache-dir", t.TempDir())
		s.must(t, time.Minute, "mv", filepath.Join(mp, "data", "one.csv"), filepath.Join(mp, "one.csv"))
		s.must(t, time.Minute, "rm", filepath.Join(mp, "top.csv"))
		s.must(t, time.Minute, "rm", "-rf", filepath.Join(mp, "data"), filepath.Join(mp, "empty"))
		if got := s.s3.inventory(t)[bkt]; strings.Join(got, " ") != "one.csv results/ results/final.rds" {
			t.Errorf("objects after deletes with --allow-delete: %q", got)
		}
	})
}

// rGuard: R's write-to-a-temporary-name-then-rename, unlink of the
// session's own files and directories, and what R reports for existing
// objects (unlink returns 1, file.rename FALSE with a warning).
const rGuard = `
args <- commandArgs(TRUE); mnt <- args[1]
res <- file.path(mnt, "results")
stopifnot(dir.create(res))
saveRDS(mtcars, file.path(res, "tmp.rds"))
stopifnot(file.rename(file.path(res, "tmp.rds"), file.path(res, "final.rds")))
stopifnot(identical(readRDS(file.path(res, "final.rds")), mtcars))
write.csv(mtcars, file.path(res, "session.csv"))
stopifnot(unlink(file.path(res, "session.csv")) == 0, !file.exists(file.path(res, "session.csv")))
stopifnot(dir.create(file.path(res, "scratch")))
writeLines("x", file.path(res, "scratch", "a.txt"))
stopifnot(unlink(file.path(res, "scratch"), recursive = TRUE) == 0, !dir.exists(file.path(res, "scratch")))
stopifnot(unlink(file.path(mnt, "top.csv")) == 1, file.exists(file.path(mnt, "top.csv")))
stopifnot(!suppressWarnings(file.rename(file.path(mnt, "data", "one.csv"), file.path(mnt, "one.csv"))))
stopifnot(file.exists(file.path(mnt, "data", "one.csv")))
cat("R-GUARD-OK\n")
`

// inventory lists every key of every bucket on the server, sorted.
func (c *s3client) inventory(t *testing.T) map[string][]string {
	t.Helper()
	ctx := t.Context()
	var buckets struct {
		Names []string `xml:"Buckets>Bucket>Name"`
	}
	if err := c.getXML(ctx, "", nil, &buckets); err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	out := map[string][]string{}
	for _, b := range buckets.Names {
		keys := []string{}
		token := ""
		for {
			q := url.Values{"list-type": {"2"}}
			if token != "" {
				q.Set("continuation-token", token)
			}
			var page struct {
				Keys      []string `xml:"Contents>Key"`
				Truncated bool     `xml:"IsTruncated"`
				Next      string   `xml:"NextContinuationToken"`
			}
			if err := c.getXML(ctx, b, q, &page); err != nil {
				t.Fatalf("ListObjectsV2 %s: %v", b, err)
			}
			keys = append(keys, page.Keys...)
			if !page.Truncated || page.Next == "" {
				break
			}
			token = page.Next
		}
		sort.Strings(keys)
		out[b] = keys
	}
	return out
}

// getXML sends a signed GET of the bucket (or the service, for "") with
// the query q and decodes the XML answer into v.
func (c *s3client) getXML(ctx context.Context, bucket string, q url.Values, v any) error {
	u := c.endpoint + "/" + bucket
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, req, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := xml.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

func equalInventory(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}
