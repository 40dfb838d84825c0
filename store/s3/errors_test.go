package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/bucketfs/bucketfs/store"
)

// sdkError builds an error shaped like the SDK's: an OperationError around
// an HTTP ResponseError around the API error.
func sdkError(status int, code string) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "message from server"}
	if code == "" {
		inner = errors.New("connection reset")
	}
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "GetObject",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      inner,
			},
			RequestID: "REQ",
		},
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // nil: no sentinel
	}{
		{"NoSuchKey", sdkError(404, "NoSuchKey"), store.ErrNotFound},
		{"NoSuchBucket", sdkError(404, "NoSuchBucket"), store.ErrNotFound},
		{"HEAD 404", sdkError(404, "NotFound"), store.ErrNotFound},
		{"bare 404", sdkError(404, ""), store.ErrNotFound},
		{"AccessDenied", sdkError(403, "AccessDenied"), store.ErrAccessDenied},
		{"HEAD 403", sdkError(403, "Forbidden"), store.ErrAccessDenied},
		{"InvalidAccessKeyId", sdkError(403, "InvalidAccessKeyId"), store.ErrAuth},
		{"SignatureDoesNotMatch", sdkError(403, "SignatureDoesNotMatch"), store.ErrAuth},
		{"ExpiredToken", sdkError(400, "ExpiredToken"), store.ErrAuth},
		{"InvalidToken", sdkError(400, "InvalidToken"), store.ErrAuth},
		{"TokenRefreshRequired", sdkError(400, "TokenRefreshRequired"), store.ErrAuth},
		{"versitygw unknown key", sdkError(404, "XAdminUserNotFound"), store.ErrAuth},
		{"PreconditionFailed", sdkError(412, "PreconditionFailed"), store.ErrChanged},
		{"bare 412", sdkError(412, ""), store.ErrChanged},
		{"SlowDown", sdkError(503, "SlowDown"), store.ErrThrottled},
		{"503", sdkError(503, "ServiceUnavailable"), store.ErrThrottled},
		{"Throttling 400", sdkError(400, "Throttling"), store.ErrThrottled},
		{"InternalError", sdkError(500, "InternalError"), nil},
		{"credentials", fmt.Errorf("get identity: %w", &credentialError{errors.New("no EC2 IMDS role found")}), store.ErrAuth},
		{"canceled", fmt.Errorf("op: %w", context.Canceled), context.Canceled},
		{"canceled during credentials", &credentialError{context.Canceled}, context.Canceled},
	}
	sentinels := []error{store.ErrNotFound, store.ErrAccessDenied, store.ErrAuth, store.ErrChanged, store.ErrThrottled}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := convert("ReadAt", "bkt", "a/key", tc.err)
			if tc.want != nil && !errors.Is(got, tc.want) {
				t.Errorf("convert = %v, want %v", got, tc.want)
			}
			for _, s := range sentinels {
				if s != tc.want && errors.Is(got, s) {
					t.Errorf("convert = %v, also matches %v", got, s)
				}
			}
			if !strings.Contains(got.Error(), "ReadAt bkt/a/key") {
				t.Errorf("message %q lacks operation, bucket and key", got)
			}
			// The HTTP status of a server's answer stays visible (log
			// lines and metrics show it) whatever the conversion.
			var hs interface{ HTTPStatusCode() int }
			if want := httpStatusOf(tc.err); want != 0 && (!errors.As(got, &hs) || hs.HTTPStatusCode() != want) {
				t.Errorf("convert = %v: HTTP status not kept (want %d)", got, want)
			}
		})
	}
	if convert("Stat", "b", "k", nil) != nil {
		t.Error("convert(nil) != nil")
	}
}

func TestRangeStart(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"bytes 0-9/100", 0, true},
		{"bytes 500-599/1000", 500, true},
		{"", 0, false},
		{"bytes */100", 0, false},
		{"items 1-2/3", 0, false},
	}
	for _, tc := range tests {
		got, ok := rangeStart(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("rangeStart(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPartSize(t *testing.T) {
	tests := []struct{ size, want int64 }{
		{17 << 20, 8 << 20},
		{40 << 20, 8 << 20},
		{78 << 30, 8 << 20},
		{100 << 30, 11 << 20}, // 100 GiB needs > 10.24 MiB parts
		{1 << 40, 105 << 20},  // 1 TiB needs > 104.9 MiB parts to fit 10000
	}
	for _, tc := range tests {
		got := partSize(tc.size)
		if got != tc.want {
			t.Errorf("partSize(%d) = %d MiB, want %d MiB", tc.size, got>>20, tc.want>>20)
		}
		if parts := (tc.size + got - 1) / got; parts > store.MaxParts {
			t.Errorf("partSize(%d) gives %d parts", tc.size, parts)
		}
	}
}

func httpStatusOf(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
