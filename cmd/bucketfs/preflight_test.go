package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bucketfs/bucketfs/store"
	"github.com/bucketfs/bucketfs/store/faultstore"
	"github.com/bucketfs/bucketfs/store/memstore"
)

func TestPreflight(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	mem.CreateBucket(ctx, "data")
	denyList := func(ctx context.Context, op, bucket, key string) error {
		if op == faultstore.OpListBuckets {
			return store.ErrAccessDenied
		}
		return nil
	}
	badKey := func(ctx context.Context, op, bucket, key string) error { return store.ErrAuth }
	tests := []struct {
		name        string
		hook        faultstore.Hook
		bucket      string
		wantWarning string
		wantErr     string
	}{
		{"all buckets", nil, "", "", ""},
		{"one bucket", nil, "data", "", ""},
		{"missing bucket", nil, "nope", "", `bucket "nope" does not exist`},
		{"no ListAllMyBuckets: warn, still mount", denyList, "", "s3:ListAllMyBuckets", ""},
		{"no ListAllMyBuckets, one bucket: fine", denyList, "data", "", ""},
		{"rejected key", badKey, "", "", "credentials rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := faultstore.New(mem)
			fs.SetHook(tt.hook)
			warning, err := preflight(ctx, fs, mountConfig{Bucket: tt.bucket, MountPoint: "/mnt/s3"})
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if (tt.wantWarning == "") != (warning == "") || !strings.Contains(warning, tt.wantWarning) {
				t.Errorf("warning = %q, want %q", warning, tt.wantWarning)
			}
		})
	}
}

func TestExplainPreflight(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{finalError{"bucket x does not exist"}, "bucket x does not exist"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "cannot reach S3 at http://e"},
	}
	for _, tt := range tests {
		if got := explainPreflight(tt.err, "http://e").Error(); !strings.Contains(got, tt.want) {
			t.Errorf("explainPreflight(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
