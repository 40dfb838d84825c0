package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// metric says how a workload is scored.
type metric int

const (
	throughput metric = iota // MiB/s, higher is better
	duration                 // seconds, lower is better
)

// workload describes one workload id written by scripts/bench.
type workload struct {
	id     string
	short  string // chart and summary label
	metric metric
	title  func(Sizes) string
}

var workloads = []workload{
	{"seq_cold", "seq read, cold", throughput, func(s Sizes) string {
		return fmt.Sprintf("Sequential read of the %s object, cold", s.Big)
	}},
	{"seq_warm", "seq re-read, warm", throughput, func(s Sizes) string {
		return "The same file again on the same mount (warm re-read)"
	}},
	{"par4_cold", "4 readers, cold", throughput, func(s Sizes) string {
		return fmt.Sprintf("4 parallel sequential readers, a quarter of the %s object each, cold", s.Big)
	}},
	{"rand_cold", "random reads, cold", throughput, func(s Sizes) string {
		return fmt.Sprintf("%d random %s reads of the %s object, one at a time, cold", s.RandReads, s.RandSize, s.Mid)
	}},
	{"ttfb_cold", "first byte", duration, func(s Sizes) string {
		return fmt.Sprintf("Time to first byte: `head -c 1` of the %s object on a fresh mount", s.Big)
	}},
	{"find_cold", "find, cold", duration, func(s Sizes) string {
		return fmt.Sprintf("`find` of %s objects in %d directories, cold", thousands(int64(s.Tree)), s.TreeDirs)
	}},
	{"lsr_after_find", "ls -lR after find", duration, func(s Sizes) string {
		return "`ls -lR` of the same tree right after `find`"
	}},
	{"cat_small_cold", "cat small files", duration, func(s Sizes) string {
		return fmt.Sprintf("`cat` of the %d small files of one directory, in order, cold", s.SmallFiles)
	}},
	{"fread_cold", "R fread", duration, func(s Sizes) string {
		return fmt.Sprintf("R `data.table::fread` of a %s-row CSV (%.1f MB), cold", thousands(int64(s.CSVRows)), float64(s.CSVBytes)/1e6)
	}},
	{"readcsv_cold", "R read.csv", duration, func(s Sizes) string {
		return "R `read.csv` of the same CSV, cold"
	}},
	{"write_seq", "seq write", throughput, func(s Sizes) string {
		return fmt.Sprintf("Sequential write of a %s file, from open to the end of close (the upload); the ceiling uploads the same bytes from memory", s.Big)
	}},
	{"append_big", "append a line", duration, func(s Sizes) string {
		return fmt.Sprintf("`echo >>` of one line to a %s object, on a fresh mount, from open to the end of close (the upload)", s.Big)
	}},
	{"columnar_cold", "columnar (Parquet-like)", duration, func(s Sizes) string {
		return "Columnar reads as arrow and duckdb read Parquet: per file the last 64 KiB, then two 512 KiB ranges; 200 files of 8 MiB in 20 directories, 8 at a time, cold"
	}},
}

// systems in display order; the ceiling first because it is the target.
var systems = []struct{ id, label string }{
	{"ceiling", "SDK ceiling"},
	{"bucketfs", "bucketfs"},
	{"bucketfs-user", "bucketfs, a user's own mount"},
	{"s3fs", "s3fs"},
	{"rclone", "rclone mount"},
	{"goofys", "goofys"},
	{"geesefs", "geesefs"},
}

// peers are the other mounts bucketfs is compared with ("best peer").
var peers = []string{"s3fs", "rclone", "goofys", "geesefs"}

// present are the systems with a record in run, in display order.
func present(run Run) []string {
	var ids []string
	for _, s := range systems {
		for _, recs := range run.Records {
			if _, ok := recs[s.id]; ok {
				ids = append(ids, s.id)
				break
			}
		}
	}
	return ids
}

// cpuPerGiB is the CPU seconds per GiB moved, "—" when unknown.
func cpuPerGiB(r Record) string {
	if r.CPUSeconds == nil || r.Bytes == nil || *r.Bytes <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f s", *r.CPUSeconds/(float64(*r.Bytes)/(1<<30)))
}

func systemLabel(id string, m Meta) string {
	for _, s := range systems {
		if s.id != id {
			continue
		}
		if v := m.Versions[id]; v != "" {
			return s.label + " " + strings.TrimPrefix(v, "v")
		}
		return s.label
	}
	return id
}

// value is the workload's score for r, or NaN when it has none.
func value(w workload, r Record) float64 {
	if !r.OK {
		return math.NaN()
	}
	switch {
	case w.metric == throughput && r.MiBs != nil:
		return *r.MiBs
	case w.metric == duration && r.Seconds != nil:
		return *r.Seconds
	}
	return math.NaN()
}

func formatValue(w workload, v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if w.metric == throughput {
		return fmt.Sprintf("%s MiB/s", sig(v))
	}
	return formatSeconds(v)
}

func formatSeconds(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0f ms", v*1000)
	}
	return fmt.Sprintf("%s s", sig(v))
}

// sig prints three significant digits, with thousands separators.
func sig(v float64) string {
	switch {
	case v >= 1000:
		return thousands(int64(math.Round(v)))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// speedup is how many times faster bucketfs is than other (>1: bucketfs
// faster), or NaN.
func speedup(w workload, bucketfs, other float64) float64 {
	if math.IsNaN(bucketfs) || math.IsNaN(other) || bucketfs <= 0 || other <= 0 {
		return math.NaN()
	}
	if w.metric == throughput {
		return bucketfs / other
	}
	return other / bucketfs
}

func formatRatio(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if v >= 10 {
		return fmt.Sprintf("%.0f×", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

func optInt(p *int64, div float64, format string) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf(format, float64(*p)/div)
}

// render writes the results section: where and when, a summary table, the
// chart, and one table per workload.
func render(run Run, png string) string {
	m := run.Meta
	var b strings.Builder
	fmt.Fprintf(&b, "## Results\n\n")
	dirty := ""
	if m.Dirty {
		dirty = " plus uncommitted changes"
	}
	fmt.Fprintf(&b, "Measured %s on `%s` (%s, %d cores, %.0f GiB, Linux %s), load average %.2f at the start; "+
		"bucketfs at commit `%s`%s; %s. Source: `%s`. One run: absolute numbers drift between runs on this shared, "+
		"noisy machine (see the load column), ratios less so.\n\n",
		m.Date, m.Host, m.CPU, m.Cores, m.MemGiB, m.Kernel, m.LoadAvgAtStart, m.Commit, dirty, m.profileLabel(), run.Source)

	// Summary.
	shown := present(run)
	b.WriteString("| workload |")
	for _, id := range shown {
		fmt.Fprintf(&b, " %s |", systemLabel(id, m))
	}
	b.WriteString(" bucketfs vs ceiling | bucketfs vs best peer |\n|---|")
	for range shown {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, w := range workloads {
		recs := run.Records[w.id]
		if len(recs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s |", w.short)
		for _, id := range shown {
			r, ok := recs[id]
			cell := "—"
			if ok {
				cell = formatValue(w, value(w, r))
				if !r.OK {
					cell = "failed"
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		bv := value(w, recs["bucketfs"])
		best := math.NaN()
		for _, peer := range peers {
			if r, ok := recs[peer]; ok {
				v := value(w, r)
				if math.IsNaN(best) || (!math.IsNaN(v) && better(w, v, best)) {
					best = v
				}
			}
		}
		ceil := math.NaN()
		if r, ok := recs["ceiling"]; ok {
			ceil = value(w, r)
		}
		fmt.Fprintf(&b, " %s | %s |\n", formatRatio(speedup(w, bv, ceil)), formatRatio(speedup(w, bv, best)))
	}
	b.WriteString("\nRatios are bucketfs's speed divided by the other's (for times, the other's time divided by bucketfs's): " +
		"above 1 bucketfs is faster. The ceiling is measured only where it means something (the SDK fetching the bytes directly, or uploading them).\n\n")
	fmt.Fprintf(&b, "![throughput and times per workload](%s)\n\n", png)

	// One table per workload.
	b.WriteString("### Per workload\n\n")
	b.WriteString("Requests are the server's access-log lines between the start and the end of the workload " +
		"(0.5 s after it, so late read-ahead counts); *fetched* is what the delay line carried from the server; " +
		"*peak RSS* is VmHWM of the mount daemon since it was mounted; *CPU* is the user+system time the daemon used " +
		"during the workload (the machine has 2 cores, shared by server, delay line, daemon and reader), and for the ceiling the " +
		"client's own; *CPU/GiB* is that per GiB read or written.\n\n")
	for _, w := range workloads {
		recs := run.Records[w.id]
		if len(recs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "#### %s\n\n", w.title(m.Sizes))
		b.WriteString("| system | result | bucketfs speed ÷ this | GET | HEAD | LIST | other | fetched | peak RSS | CPU | CPU/GiB | load | notes |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		bv := value(w, recs["bucketfs"])
		for _, s := range systems {
			r, ok := recs[s.id]
			if !ok {
				continue
			}
			v := value(w, r)
			res := formatValue(w, v)
			if !r.OK {
				res = "failed"
			} else if w.metric == throughput && r.Seconds != nil {
				res += fmt.Sprintf(" (%s)", formatSeconds(*r.Seconds))
			}
			ratio := formatRatio(speedup(w, bv, v))
			if s.id == "bucketfs" {
				ratio = ""
			}
			cpu := "—"
			if r.CPUSeconds != nil {
				cpu = fmt.Sprintf("%.2f s", *r.CPUSeconds)
			}
			load := "—"
			if r.Load1 != nil {
				load = fmt.Sprintf("%.2f", *r.Load1)
			}
			notes := strings.TrimSpace(strings.Trim(strings.Join(nonEmpty(r.Tool, r.Note), "; "), "; "))
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				systemLabel(s.id, m), res, ratio,
				thousands(r.Requests["GET"]), thousands(r.Requests["HEAD"]), thousands(r.Requests["LIST"]), thousands(r.Requests["other"]),
				optInt(r.FetchedBytes, 1<<20, "%.1f MiB"), optInt(r.RSSKiB, 1024, "%.0f MiB"), cpu, cpuPerGiB(r), load,
				strings.ReplaceAll(notes, "|", `\|`))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func better(w workload, a, b float64) bool {
	if w.metric == throughput {
		return a > b
	}
	return a < b
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// writeChartData writes "panel, workload, system, value" rows for chart.R,
// in display order.
func writeChartData(w io.Writer, run Run) error {
	if _, err := fmt.Fprintln(w, "panel\tworkload\tsystem\tvalue"); err != nil {
		return err
	}
	for _, wl := range workloads {
		recs := run.Records[wl.id]
		panel := "MiB/s (higher is better)"
		if wl.metric == duration {
			panel = "seconds (lower is better)"
		}
		for _, s := range systems {
			r, ok := recs[s.id]
			if !ok {
				continue
			}
			v := value(wl, r)
			if math.IsNaN(v) {
				continue
			}
			if _, err := fmt.Fprintf(w, "%s\t%s\t%s\t%g\n", panel, wl.short, s.label, v); err != nil {
				return err
			}
		}
	}
	return nil
}
