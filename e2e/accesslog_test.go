package e2e

import (
	"bufio"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// versitygw's --access-log writes one line per request in the S3 server
// access log layout:
//
//	OWNER BUCKET [TIME ZONE] IP REQUESTER REQUESTID OPERATION KEY URI STATUS ...
//
// KEY may contain spaces, so fields after OPERATION are not split reliably.
// OPERATION is the first field that looks like "s3_HeadObject"; BUCKET is the
// second field ("-" for service-level calls such as ListBuckets).
var opRE = regexp.MustCompile(`^s3_[A-Za-z0-9]+$`)

// parseAccessLine returns the bucket and operation of one access-log line.
func parseAccessLine(line string) (bucket, op string, ok bool) {
	f := strings.Fields(line)
	if len(f) < 8 {
		return "", "", false // "log starts ..." and partial lines
	}
	for _, x := range f[2:] {
		if opRE.MatchString(x) {
			return f[1], strings.TrimPrefix(x, "s3_"), true
		}
	}
	return "", "", false
}

// accessLog counts the server's requests in a window of the log file.
type accessLog struct{ path string }

// mark returns the current end of the log; count reads from there.
func (l accessLog) mark(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(l.path)
	if err != nil {
		t.Fatalf("access log: %v", err)
	}
	return fi.Size()
}

// count returns, per operation, how many requests for bucket were logged
// after mark. The server writes the line after answering, so it waits until
// the log has stopped growing before reading.
func (l accessLog) count(t *testing.T, mark int64, bucket string) map[string]int {
	t.Helper()
	var last int64 = -1
	for i := 0; i < 50; i++ {
		fi, err := os.Stat(l.path)
		if err != nil {
			t.Fatalf("access log: %v", err)
		}
		if fi.Size() == last {
			break
		}
		last = fi.Size()
		time.Sleep(100 * time.Millisecond)
	}
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatalf("access log: %v", err)
	}
	defer f.Close()
	if _, err := f.Seek(mark, io.SeekStart); err != nil {
		t.Fatalf("access log: %v", err)
	}
	return countOps(f, bucket)
}

func countOps(r io.Reader, bucket string) map[string]int {
	counts := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		b, op, ok := parseAccessLine(sc.Text())
		if ok && (bucket == "" || b == bucket) {
			counts[op]++
		}
	}
	return counts
}

// lists adds up the listing operations (V1 and V2).
func lists(c map[string]int) int { return c["ListObjectsV2"] + c["ListObjects"] }

// This one runs without BUCKETFS_E2E: the request counts of TestManySmallObjects
// are only as good as this parser. The lines are real versitygw v1.8.0 output.
func TestParseAccessLog(t *testing.T) {
	const logText = `log starts 2026-11-27 22:18:39.265325504 +0000 UTC m=+0.020204989
- - [27/November/2026:22:18:39 +0000] 127.0.0.1 AKT WEA97JCYX0GHTYLY s3_ListAllMyBuckets - / 200 - 0 0 0 0 - curl/7.88.1 - Dm= SigV4 - AuthHeader s3.us-east-1.amazonaws.com - arn:aws:s3:::/ Yes
- bkt [27/November/2026:22:18:39 +0000] 127.0.0.1 AKT CRZ1ERM6FL2Y0WQH s3_HeadObject dir/a b.txt /bkt/dir/a%20b.txt 200 - 0 0 0 0 - aws-sdk-go-v2/1.48.0 - h0= SigV4 - AuthHeader s3.us-east-1.amazonaws.com - arn:aws:s3:::/bkt/dir/a b.txt Yes
- bkt [27/November/2026:22:18:39 +0000] 127.0.0.1 AKT 2YIJ0XFMOYZOERDZ s3_ListObjectsV2 - /bkt?list-type=2&delimiter=/&prefix=dir/ 200 - 0 0 0 0 - aws-sdk-go-v2/1.48.0 - z6= SigV4 - AuthHeader s3.us-east-1.amazonaws.com - arn:aws:s3:::/bkt Yes
- bkt [27/November/2026:22:18:39 +0000] 127.0.0.1 AKT SWRHW3U6R8TLOUHI s3_ListObjectsV2 - /bkt?list-type=2&prefix=s3_x 200 - 0 0 0 0 - aws-sdk-go-v2/1.48.0 - rl= SigV4 - AuthHeader s3.us-east-1.amazonaws.com - arn:aws:s3:::/bkt Yes
- other [27/November/2026:22:18:39 +0000] 127.0.0.1 AKT 9MBW6ZQBUR8PCCCW s3_GetObject s3_Key /other/s3_Key 200 - 0 0 0 0 - aws-sdk-go-v2/1.48.0 - n7= SigV4 - AuthHeader s3.us-east-1.amazonaws.com - arn:aws:s3:::/other/s3_Key Yes
- bkt [27/November/2026:22:18:39 +0000] 127.0.0.1 - 1TMY3T4RQ15OB59W s3_HeadObject k /bkt/k 403 SignatureDoesNotMatch 0 0 0 0 - aws-sdk-go-v2/1.48.0 - AZ= SigV4 - AuthHeader s3.us-east-1.amazonaws.com - arn:aws:s3:::/bkt/k Yes
`
	tests := []struct {
		bucket string
		want   map[string]int
	}{
		{"bkt", map[string]int{"HeadObject": 2, "ListObjectsV2": 2}},
		{"other", map[string]int{"GetObject": 1}},
		{"", map[string]int{"HeadObject": 2, "ListObjectsV2": 2, "GetObject": 1, "ListAllMyBuckets": 1}},
		{"nope", map[string]int{}},
	}
	for _, tc := range tests {
		got := countOps(strings.NewReader(logText), tc.bucket)
		if len(got) != len(tc.want) {
			t.Errorf("bucket %q: got %v, want %v", tc.bucket, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("bucket %q: got %v, want %v", tc.bucket, got, tc.want)
			}
		}
	}
}
