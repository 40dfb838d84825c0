package s3

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketfs/bucketfs/store"
)

// TestListURLEncoding: List asks for URL-encoded keys and decodes them when
// the server says it encoded them, and only then.
func TestListURLEncoding(t *testing.T) {
	tests := []struct {
		name         string
		encodingType string // what the server answers with
		keys         []string
		prefixes     []string
		wantKeys     []string
		wantPrefixes []string
	}{
		{
			name:         "encoded",
			encodingType: "url",
			keys:         []string{"p/sp+ace", "p/plus%2Bsign", "p/ctl%01%1F", "p/bad%FFutf8", "p/pct%2520", "p/%C3%BCn%C3%AF", "p/broken%zz", "q/outside"},
			prefixes:     []string{"p/dir%0A/", "p/x%2F%2F/"},
			wantKeys:     []string{"p/sp ace", "p/plus+sign", "p/ctl\x01\x1f", "p/bad\xffutf8", "p/pct%20", "p/ünï"},
			wantPrefixes: []string{"p/dir\n/", "p/x///"},
		},
		{
			name:         "server ignores encoding-type",
			encodingType: "",
			keys:         []string{"p/sp+ace", "p/pct%2520"},
			prefixes:     []string{"p/d%20ir/"},
			wantKeys:     []string{"p/sp+ace", "p/pct%2520"},
			wantPrefixes: []string{"p/d%20ir/"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked = r.URL.Query().Get("encoding-type")
				var b bytes.Buffer
				b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><IsTruncated>false</IsTruncated>`)
				if tc.encodingType != "" {
					fmt.Fprintf(&b, "<EncodingType>%s</EncodingType>", tc.encodingType)
				}
				for _, k := range tc.keys {
					fmt.Fprintf(&b, `<Contents><Key>%s</Key><Size>1</Size><ETag>"e"</ETag><LastModified>2024-01-02T03:04:05.000Z</LastModified></Contents>`, k)
				}
				for _, p := range tc.prefixes {
					fmt.Fprintf(&b, "<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>", p)
				}
				b.WriteString("</ListBucketResult>")
				w.Header().Set("Content-Type", "application/xml")
				w.Write(b.Bytes())
			}))
			t.Cleanup(srv.Close)
			cfg := aws.Config{
				Region:      "us-east-1",
				HTTPClient:  awshttp.NewBuildableClient(),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDHOSTILE", "hostileSecret0123456789", ""),
			}
			s := New(cfg, Options{Endpoint: srv.URL, PathStyle: true})
			page, err := s.List(context.Background(), store.ListInput{Bucket: "b", Prefix: "p/", Delimiter: "/"})
			if err != nil {
				t.Fatal(err)
			}
			if asked != "url" {
				t.Errorf("request encoding-type = %q, want url", asked)
			}
			var keys []string
			for _, o := range page.Objects {
				keys = append(keys, o.Key)
			}
			if fmt.Sprintf("%q", keys) != fmt.Sprintf("%q", tc.wantKeys) {
				t.Errorf("keys = %q, want %q", keys, tc.wantKeys)
			}
			if fmt.Sprintf("%q", page.Prefixes) != fmt.Sprintf("%q", tc.wantPrefixes) {
				t.Errorf("prefixes = %q, want %q", page.Prefixes, tc.wantPrefixes)
			}
		})
	}
}

// TestHostileKeysVersity: awkward keys make the round trip through a real
// server (versitygw) unchanged: put, list (with and without a delimiter),
// stat and read. versitygw's POSIX backend refuses some keys outright;
// those are logged, not failed.
func TestHostileKeysVersity(t *testing.T) {
	endpoint, access, secret := testEnv(t)
	s := newTestStore(t, endpoint, access, secret)
	reachable(t, s, endpoint)
	bkt := newBucket(t, s)
	ctx := t.Context()
	keys := []string{
		"sp ace.csv", "plus+sign", "pct%20lit", "q?.txt", "star*.txt", "amp&semi;",
		"ünï.txt", "emoji-😀", "tab\tname", "new\nline", "trailing.", "...", "back\\slash",
		"<lt>&gt", "quote\"'", strings.Repeat("n", 255), "dir/sp ace/f+1", "dir/%2F/f",
		"ctl\x01x", "a//b", "../up", "a", "a/b",
	}
	var stored []string
	for _, k := range keys {
		body := []byte("key:" + k)
		if _, err := s.Put(ctx, bkt, k, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Logf("versitygw refuses key %q: %v", k, err)
			continue
		}
		stored = append(stored, k)
	}
	sort.Strings(stored)
	var listed []string
	for tok := ""; ; {
		page, err := s.List(ctx, store.ListInput{Bucket: bkt, Token: tok, MaxKeys: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			listed = append(listed, o.Key)
		}
		if tok = page.NextToken; tok == "" {
			break
		}
	}
	sort.Strings(listed)
	for _, k := range stored {
		if !contains(listed, k) {
			// XML 1.0 cannot carry most control characters and versitygw
			// does not URL-encode; its POSIX backend folds "//" into "/".
			if strings.Contains(k, "//") || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' }) {
				t.Logf("versitygw stored key %q but lists it otherwise", k)
				continue
			}
			t.Errorf("key %q stored but not listed", k)
			continue
		}
		o, err := s.Stat(ctx, bkt, k)
		if err != nil || o.Key != k || o.Size != int64(len("key:"+k)) {
			t.Errorf("Stat(%q) = %+v, %v", k, o, err)
			continue
		}
		buf := make([]byte, o.Size)
		if n, err := s.ReadAt(ctx, bkt, k, o.ETag, buf, 0); n != len(buf) || string(buf) != "key:"+k {
			t.Errorf("ReadAt(%q) = %q, %v", k, buf[:n], err)
		}
	}
	// One level under "dir/": the common prefixes come back as stored.
	page, err := s.List(ctx, store.ListInput{Bucket: bkt, Prefix: "dir/", Delimiter: "/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dir/sp ace/", "dir/%2F/"} {
		if contains(stored, strings.TrimSuffix(want, "/")+"/f+1") || contains(stored, want+"f") {
			if !contains(page.Prefixes, want) {
				t.Errorf("prefixes under dir/ = %q, want %q among them", page.Prefixes, want)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
