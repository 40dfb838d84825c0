package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

const fixture = `{"kind":"meta","run":"R1","date":"2026-11-27T22:30:07Z","profile":"full","host":"vm","cpu":"AMD EPYC","cores":2,"mem_gib":24,"kernel":"6.18","delay":"10ms","rate":"100MB","bucketfs_commit":"abc123","bucketfs_dirty":false,"versions":{"s3fs":"1.90","rclone":"v1.60.1-DEV"},"sizes":{"big":"1GiB","mid":"256MiB","tree":10000,"tree_dirs":20,"small_files":500,"csv_rows":200000,"csv_bytes":9500000,"rand_reads":200,"rand_size":"256KiB"},"load1_start":0.5}
{"run":"R1","workload":"seq_cold","system":"ceiling","seconds":1.0,"bytes":1073741824,"mib_s":1024,"ok":true,"note":"","tool":"ceiling","requests":{"GET":128,"HEAD":1,"LIST":0,"other":0},"fetched_bytes":1073800000,"rss_kib":null,"load1":0.5}
{"run":"R1","workload":"seq_cold","system":"bucketfs","seconds":2.0,"bytes":1073741824,"mib_s":512,"ok":true,"note":"sha256 ok","tool":"readbench","requests":{"GET":200,"HEAD":2,"LIST":2,"other":0},"fetched_bytes":1073900000,"rss_kib":204800,"load1":0.6}
{"run":"R1","workload":"seq_cold","system":"s3fs","seconds":4.0,"bytes":1073741824,"mib_s":256,"ok":true,"note":"sha256 ok","tool":"readbench","requests":{"GET":100,"HEAD":5,"LIST":1,"other":0},"fetched_bytes":null,"rss_kib":10240,"cpu_s":3.5,"load1":0.6}
{"run":"R1","workload":"seq_cold","system":"rclone","seconds":null,"bytes":null,"mib_s":null,"ok":false,"note":"timed out after 420s","tool":"readbench","requests":{"GET":1,"HEAD":1,"LIST":0,"other":0},"fetched_bytes":5,"rss_kib":50000,"load1":0.6}
{"run":"R1","workload":"find_cold","system":"bucketfs","seconds":0.5,"bytes":null,"mib_s":null,"ok":true,"note":"","tool":"find | wc -l","requests":{"GET":0,"HEAD":1,"LIST":21,"other":0},"fetched_bytes":1000,"rss_kib":20480,"load1":0.7}
{"run":"R1","workload":"find_cold","system":"s3fs","seconds":15,"bytes":null,"mib_s":null,"ok":true,"note":"","tool":"find | wc -l","requests":{"GET":0,"HEAD":10125,"LIST":21,"other":0},"fetched_bytes":1000,"rss_kib":20480,"load1":0.7}
`

func TestParse(t *testing.T) {
	run, err := parse(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	if run.Meta.Run != "R1" || run.Meta.Sizes.Tree != 10000 {
		t.Errorf("meta = %+v", run.Meta)
	}
	if got := len(run.Records["seq_cold"]); got != 4 {
		t.Errorf("%d seq_cold records, want 4", got)
	}
	for _, bad := range []string{
		"",
		"{not json}\n",
		`{"run":"R1","workload":"seq_cold","system":"s3fs","ok":true}` + "\n", // no meta
		`{"kind":"meta","run":"R1"}` + "\n",                                   // no results
		`{"kind":"meta","run":"R1"}` + "\n" + `{"run":"R1","ok":true}` + "\n", // no workload
	} {
		if _, err := parse(strings.NewReader(bad)); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}

func TestRender(t *testing.T) {
	run, err := parse(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	run.Source = "bench/results/R1-full.jsonl"
	out := render(run, "benchmarks.png")
	for _, want := range []string{
		// Summary row: ceiling, bucketfs, s3fs, rclone failed, 0.5x the
		// ceiling, 2x the best peer (s3fs; rclone failed).
		"| seq read, cold | 1,024 MiB/s | 512 MiB/s | 256 MiB/s | failed | 0.50× | 2.00× |",
		// Times: bucketfs 0.5 s vs s3fs 15 s is 30x.
		"| find, cold | — | 500 ms | 15.0 s | — | — | 30× |",
		"#### Sequential read of the 1GiB object, cold",
		"| s3fs 1.90 | 256 MiB/s (4.00 s) | 2.00× | 100 | 5 | 1 | 0 | — | 10 MiB | 3.50 s | 3.50 s | 0.60 |",
		"| rclone mount 1.60.1-DEV | failed | — |",
		"timed out after 420s",
		"`find` of 10,000 objects in 20 directories, cold",
		"| s3fs 1.90 | 15.0 s | 30× | 0 | 10,125 | 21 |",
		"![throughput and times per workload](benchmarks.png)",
		"commit `abc123`;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render output lacks %q\n%s", want, out)
		}
	}
	// Workloads without records get no table.
	if strings.Contains(out, "R `read.csv`") {
		t.Error("render wrote a table for a workload that was not run")
	}
}

func TestSplice(t *testing.T) {
	doc := "# Title\n\nhand text\n\n" + beginMarker + "\nold results\n" + endMarker + "\n\nmore hand text\n"
	out, err := splice([]byte(doc), "new results\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nhand text\n\n" + beginMarker + "\nnew results\n" + endMarker + "\n\nmore hand text\n"
	if string(out) != want {
		t.Errorf("splice =\n%s\nwant\n%s", out, want)
	}
	for _, bad := range []string{"no markers", endMarker + " " + beginMarker} {
		if _, err := splice([]byte(bad), "x"); err == nil {
			t.Errorf("splice(%q) succeeded", bad)
		}
	}
}

func TestSpeedup(t *testing.T) {
	tp, dur := workloads[0], workloads[4]
	if tp.metric != throughput || dur.metric != duration {
		t.Fatal("workload table order changed; fix the test")
	}
	tests := []struct {
		w           workload
		bfs, other  float64
		want        float64
		wantMissing bool
	}{
		{tp, 500, 250, 2, false},
		{tp, 100, 400, 0.25, false},
		{dur, 0.5, 15, 30, false},
		{dur, 2, 1, 0.5, false},
		{dur, math.NaN(), 1, 0, true},
		{tp, 1, 0, 0, true},
	}
	for _, tc := range tests {
		got := speedup(tc.w, tc.bfs, tc.other)
		if tc.wantMissing != math.IsNaN(got) || (!tc.wantMissing && math.Abs(got-tc.want) > 1e-9) {
			t.Errorf("speedup(%s, %v, %v) = %v, want %v", tc.w.id, tc.bfs, tc.other, got, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{thousands(0), "0"},
		{thousands(999), "999"},
		{thousands(1000), "1,000"},
		{thousands(1234567), "1,234,567"},
		{thousands(-1234), "-1,234"},
		{sig(9896.4), "9,896"},
		{sig(358.2), "358"},
		{sig(14.84), "14.8"},
		{sig(4.123), "4.12"},
		{formatSeconds(0.0123), "12 ms"},
		{formatSeconds(217.4), "217 s"},
		{formatRatio(31.6), "32×"},
		{formatRatio(0.456), "0.46×"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestChartData(t *testing.T) {
	run, err := parse(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeChartData(&b, run); err != nil {
		t.Fatal(err)
	}
	want := "panel\tworkload\tsystem\tvalue\n" +
		"MiB/s (higher is better)\tseq read, cold\tSDK ceiling\t1024\n" +
		"MiB/s (higher is better)\tseq read, cold\tbucketfs\t512\n" +
		"MiB/s (higher is better)\tseq read, cold\ts3fs\t256\n" +
		"seconds (lower is better)\tfind, cold\tbucketfs\t0.5\n" +
		"seconds (lower is better)\tfind, cold\ts3fs\t15\n"
	if b.String() != want {
		t.Errorf("chart data =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestProfileLabel(t *testing.T) {
	tests := []struct {
		meta Meta
		want string
	}{
		{Meta{Profile: "full"}, "full profile, no delay line"},
		{Meta{Profile: "full", Delay: "10ms", Rate: "100MB"}, "full profile, 10ms each way, 100MB/s per connection"},
		{Meta{Profile: "full", Delay: "10ms", Rate: "100MB", TotalRate: "0"}, "full profile, 10ms each way, 100MB/s per connection"},
		{Meta{Profile: "full", Delay: "10ms", Rate: "100MB", TotalRate: "125MB"}, "full profile, 10ms each way, 100MB/s per connection, 125MB/s in all"},
	}
	for _, tc := range tests {
		if got := tc.meta.profileLabel(); got != tc.want {
			t.Errorf("profileLabel(%+v) = %q, want %q", tc.meta, got, tc.want)
		}
	}
}
