package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rMake writes the expected data: a small mixed-type CSV for read.csv, a
// larger CSV for fread (which memory-maps the file: the mmap path through
// FUSE), and an RDS of a data frame plus a fitted model for readRDS.
const rMake = `
args <- commandArgs(TRUE); out <- args[1]
set.seed(42)
n <- 5000
df <- data.frame(
  id = seq_len(n),
  name = sprintf("item-%05d", seq_len(n)),
  value = round(rnorm(n), 6),
  flag = seq_len(n) %% 3 == 0,
  day = format(as.Date("2024-01-01") + seq_len(n) %% 366),
  stringsAsFactors = FALSE)
dir.create(file.path(out, "tables"), recursive = TRUE)
write.csv(df, file.path(out, "tables", "small.csv"), row.names = FALSE)
m <- 200000
big <- data.table::data.table(id = seq_len(m), grp = letters[seq_len(m) %% 26 + 1],
  x = round(runif(m), 4))
data.table::fwrite(big, file.path(out, "tables", "big.csv"))
saveRDS(list(df = df, model = lm(value ~ id, data = df)), file.path(out, "obj.rds"))
cat("made\n")
`

// rCheck reads every file locally and through the mount and compares them;
// it also checks a few values computed from the generator's parameters, so a
// wrong local copy would not hide a wrong mounted one.
const rCheck = `
args <- commandArgs(TRUE); loc <- args[1]; mnt <- args[2]
a <- read.csv(file.path(loc, "tables", "small.csv"), stringsAsFactors = FALSE)
b <- read.csv(file.path(mnt, "tables", "small.csv"), stringsAsFactors = FALSE)
stopifnot(identical(a, b), nrow(b) == 5000, sum(b$id) == 5000 * 5001 / 2,
  sum(b$flag) == 1666, b$name[5000] == "item-05000")
x <- data.table::fread(file.path(loc, "tables", "big.csv"))
y <- data.table::fread(file.path(mnt, "tables", "big.csv"))
stopifnot(identical(x, y), nrow(y) == 200000, sum(as.numeric(y$id)) == 200000 * 200001 / 2)
o1 <- readRDS(file.path(loc, "obj.rds"))
o2 <- readRDS(file.path(mnt, "obj.rds"))
stopifnot(identical(o1, o2), isTRUE(all.equal(o2$df, a)), inherits(o2$model, "lm"))
cat("R-OK", nrow(b), nrow(y), round(unname(coef(o2$model))[2], 8), "\n")
`

func TestRReaders(t *testing.T) {
	s := need(t)
	bkt := s.bucket("r")
	work := t.TempDir()
	for name, body := range map[string]string{"make.R": rMake, "check.R": rCheck} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	seed := filepath.Join(work, "seed")
	local := filepath.Join(seed, bkt)
	s.must(t, 5*time.Minute, "Rscript", filepath.Join(work, "make.R"), local)
	s.seedDir(t, seed)

	mp := s.mount(t, "s3://"+bkt)
	r := s.exec(t, 5*time.Minute, nil, "Rscript", filepath.Join(work, "check.R"), local, mp)
	if r.err != nil {
		t.Fatalf("R check failed: %v\n%s", r.err, clip(r.stderr))
	}
	if !strings.HasPrefix(r.stdout, "R-OK ") {
		t.Fatalf("R check printed %q", r.stdout)
	}
	t.Logf("%s(took %v)", r.stdout, r.took.Round(time.Millisecond))

	// The same through an all-buckets mount: R users open paths like
	// /mnt/s3/BUCKET/file.
	all := s.mount(t, "")
	r = s.exec(t, 5*time.Minute, nil, "Rscript", filepath.Join(work, "check.R"), local, filepath.Join(all, bkt))
	if r.err != nil || !strings.HasPrefix(r.stdout, "R-OK ") {
		t.Fatalf("R check through the all-buckets mount: %v\n%s%s", r.err, r.stdout, clip(r.stderr))
	}
}
