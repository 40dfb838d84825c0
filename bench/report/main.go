// Command report turns one run of scripts/bench (a JSON-lines file in
// bench/results/) into the results section of docs/BENCHMARKS.md and the
// chart docs/benchmarks.png.
//
//	go run ./bench/report [--doc docs/BENCHMARKS.md] [--png docs/benchmarks.png] [RESULTS.jsonl]
//
// Without a file it takes the newest bench/results/*-full.jsonl. Only the
// text between the markers <!-- results:begin --> and <!-- results:end --> is
// replaced, so the hand-written parts of the document stay. The chart is
// drawn by bench/report/chart.R with Rscript; without Rscript the document is
// still written and the old chart kept.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

const (
	beginMarker = "<!-- results:begin -->"
	endMarker   = "<!-- results:end -->"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	fl.SetOutput(stderr)
	doc := fl.String("doc", "docs/BENCHMARKS.md", "document to update")
	png := fl.String("png", "docs/benchmarks.png", "chart to write")
	chartR := fl.String("chart-script", "bench/report/chart.R", "R script that draws the chart")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	path := fl.Arg(0)
	if path == "" {
		matches, _ := filepath.Glob("bench/results/*-full.jsonl")
		if len(matches) == 0 {
			return errors.New("no bench/results/*-full.jsonl: run scripts/bench first or name a file")
		}
		sort.Strings(matches)
		path = matches[len(matches)-1]
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	run, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	run.Source = filepath.ToSlash(path)
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			run.Source = filepath.ToSlash(rel)
		}
	}

	old, err := os.ReadFile(*doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(old) == 0 {
		old = []byte(defaultDoc)
	}
	section := render(run, filepath.Base(*png))
	out, err := splice(old, section)
	if err != nil {
		return fmt.Errorf("%s: %w", *doc, err)
	}
	if err := os.WriteFile(*doc, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "report: wrote %s from %s\n", *doc, path)

	if _, err := exec.LookPath("Rscript"); err != nil {
		fmt.Fprintln(stderr, "report: no Rscript; chart not redrawn")
		return nil
	}
	tsv, err := os.CreateTemp("", "bench-chart-*.tsv")
	if err != nil {
		return err
	}
	defer os.Remove(tsv.Name())
	if err := writeChartData(tsv, run); err != nil {
		tsv.Close()
		return err
	}
	if err := tsv.Close(); err != nil {
		return err
	}
	title := fmt.Sprintf("bucketfs bench bed, %s (%s, %d cores)", run.Meta.Date, run.Meta.profileLabel(), run.Meta.Cores)
	cmd := exec.Command("Rscript", "--vanilla", *chartR, tsv.Name(), *png, title)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("Rscript %s: %w", *chartR, err)
	}
	fmt.Fprintf(stderr, "report: wrote %s\n", *png)
	return nil
}

// Meta is the first line of a results file.
type Meta struct {
	Kind           string            `json:"kind"`
	Run            string            `json:"run"`
	Date           string            `json:"date"`
	Profile        string            `json:"profile"`
	Host           string            `json:"host"`
	CPU            string            `json:"cpu"`
	Cores          int               `json:"cores"`
	MemGiB         float64           `json:"mem_gib"`
	Kernel         string            `json:"kernel"`
	Delay          string            `json:"delay"`
	Rate           string            `json:"rate"`
	TotalRate      string            `json:"total_rate"` // all connections together; "" or "0": no cap
	Commit         string            `json:"bucketfs_commit"`
	Dirty          bool              `json:"bucketfs_dirty"`
	Versions       map[string]string `json:"versions"`
	Sizes          Sizes             `json:"sizes"`
	LoadAvgAtStart float64           `json:"load1_start"`
}

func (m Meta) profileLabel() string {
	if m.Delay == "" {
		return m.Profile + " profile, no delay line"
	}
	label := fmt.Sprintf("%s profile, %s each way, %s/s per connection", m.Profile, m.Delay, m.Rate)
	if m.TotalRate != "" && m.TotalRate != "0" {
		label += fmt.Sprintf(", %s/s in all", m.TotalRate)
	}
	return label
}

// Sizes describes the data set of the run.
type Sizes struct {
	Big        string `json:"big"`
	Mid        string `json:"mid"`
	Tree       int    `json:"tree"`
	TreeDirs   int    `json:"tree_dirs"`
	SmallFiles int    `json:"small_files"`
	CSVRows    int    `json:"csv_rows"`
	CSVBytes   int64  `json:"csv_bytes"`
	RandReads  int    `json:"rand_reads"`
	RandSize   string `json:"rand_size"`
}

// Record is one workload on one system.
type Record struct {
	Workload     string           `json:"workload"`
	System       string           `json:"system"`
	Seconds      *float64         `json:"seconds"`
	Bytes        *int64           `json:"bytes"`
	MiBs         *float64         `json:"mib_s"`
	OK           bool             `json:"ok"`
	Note         string           `json:"note"`
	Tool         string           `json:"tool"`
	Requests     map[string]int64 `json:"requests"`
	FetchedBytes *int64           `json:"fetched_bytes"`
	RSSKiB       *int64           `json:"rss_kib"`
	CPUSeconds   *float64         `json:"cpu_s"`
	Load1        *float64         `json:"load1"`
}

// Run is a parsed results file.
type Run struct {
	Source  string
	Meta    Meta
	Records map[string]map[string]Record // workload -> system -> record
}

func parse(r io.Reader) (Run, error) {
	run := Run{Records: map[string]map[string]Record{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var probe struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return Run{}, fmt.Errorf("line %d: %w", line, err)
		}
		if probe.Kind == "meta" {
			if err := json.Unmarshal(b, &run.Meta); err != nil {
				return Run{}, fmt.Errorf("line %d: %w", line, err)
			}
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return Run{}, fmt.Errorf("line %d: %w", line, err)
		}
		if rec.Workload == "" || rec.System == "" {
			return Run{}, fmt.Errorf("line %d: record without workload or system", line)
		}
		if run.Records[rec.Workload] == nil {
			run.Records[rec.Workload] = map[string]Record{}
		}
		run.Records[rec.Workload][rec.System] = rec
	}
	if err := sc.Err(); err != nil {
		return Run{}, err
	}
	if run.Meta.Run == "" {
		return Run{}, errors.New("no meta line")
	}
	if len(run.Records) == 0 {
		return Run{}, errors.New("no results")
	}
	return run, nil
}

// splice replaces the text between the markers of doc with section.
func splice(doc []byte, section string) ([]byte, error) {
	s := string(doc)
	i := strings.Index(s, beginMarker)
	j := strings.Index(s, endMarker)
	if i < 0 || j < i {
		return nil, fmt.Errorf("markers %s and %s not found in order", beginMarker, endMarker)
	}
	var b strings.Builder
	b.WriteString(s[:i+len(beginMarker)])
	b.WriteString("\n")
	b.WriteString(strings.TrimSpace(section))
	b.WriteString("\n")
	b.WriteString(s[j:])
	return []byte(b.String()), nil
}

// defaultDoc is used when the document does not exist yet.
const defaultDoc = `# Benchmarks

Run ` + "`scripts/bench`" + ` to measure; ` + "`go run ./bench/report`" + ` rewrites the section below.

` + beginMarker + `
` + endMarker + `
`
