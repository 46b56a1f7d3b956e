package iothub_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func TestParseError_Formats(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   http.Header
		body     string
		wantCode int
		wantKind iothub.Kind
		wantWait time.Duration
	}{
		{
			name:     "current format, escaped JSON",
			status:   404,
			body:     `{"Message":"{\"errorCode\":404103,\"trackingId\":\"abc\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2018-08-24T17:49:33.201157Z\"}","ExceptionMessage":""}`,
			wantCode: iothub.CodeDeviceNotOnline,
			wantKind: iothub.KindDeviceNotOnline,
		},
		{
			name:     "legacy format",
			status:   404,
			body:     `{"Message":"ErrorCode:DeviceNotOnline;Timed out waiting for device to connect.","ExceptionMessage":"Tracking ID:x-G:5"}`,
			wantCode: iothub.CodeDeviceNotOnline,
			wantKind: iothub.KindDeviceNotOnline,
		},
		{
			name:     "message as object",
			status:   504,
			body:     `{"Message":{"errorCode":504101,"message":"Timed out waiting for the response from device."}}`,
			wantCode: iothub.CodeGatewayTimeout,
			wantKind: iothub.KindGatewayTimeout,
		},
		{
			name:     "bare detail",
			status:   412,
			body:     `{"errorCode":412001,"message":"etag mismatch"}`,
			wantCode: iothub.CodePreconditionFailed,
			wantKind: iothub.KindPreconditionFailed,
		},
		{
			name:     "throttled with retry-after",
			status:   429,
			header:   http.Header{"Retry-After": {"7"}},
			body:     string(iothub.ErrorBody(iothub.CodeThrottlingException, "slow down", nil, "", time.Now())),
			wantCode: iothub.CodeThrottlingException,
			wantKind: iothub.KindThrottled,
			wantWait: 7 * time.Second,
		},
		{
			name:     "header only",
			status:   404,
			header:   http.Header{"Iothub-Errorcode": {"DeviceNotFound"}},
			body:     `not json`,
			wantCode: iothub.CodeDeviceNotFound,
			wantKind: iothub.KindDeviceNotFound,
		},
		{
			name:     "garbage 503",
			status:   503,
			body:     `<html>oops</html>`,
			wantKind: iothub.KindTransient,
		},
		{
			name:     "empty 500",
			status:   500,
			wantKind: iothub.KindTransient,
		},
		{
			name:     "unauthorized",
			status:   401,
			body:     string(iothub.ErrorBody(iothub.CodeIotHubUnauthorizedAccess, "bad token", nil, "", time.Now())),
			wantCode: iothub.CodeIotHubUnauthorizedAccess,
			wantKind: iothub.KindUnauthorized,
		},
		{
			name:     "bad request",
			status:   400,
			body:     string(iothub.ErrorBody(iothub.CodeArgumentInvalid, "bad", nil, "", time.Now())),
			wantCode: iothub.CodeArgumentInvalid,
			wantKind: iothub.KindBadRequest,
		},
		{
			name:     "code contradicting status is ignored",
			status:   500,
			body:     `{"errorCode":404001,"message":"x"}`,
			wantKind: iothub.KindTransient,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := iothub.ParseError(tt.status, tt.header, []byte(tt.body))
			if e.Code != tt.wantCode {
				t.Errorf("code: got %d, want %d", e.Code, tt.wantCode)
			}
			if e.Kind() != tt.wantKind {
				t.Errorf("kind: got %v, want %v", e.Kind(), tt.wantKind)
			}
			if e.RetryAfter != tt.wantWait {
				t.Errorf("retry after: got %v, want %v", e.RetryAfter, tt.wantWait)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
			wrapped := fmt.Errorf("invoke: %w", e)
			if iothub.KindOf(wrapped) != tt.wantKind {
				t.Errorf("KindOf(wrapped): got %v", iothub.KindOf(wrapped))
			}
		})
	}
}

func TestIsRetryable(t *testing.T) {
	for status, want := range map[int]bool{404: false, 429: true, 500: true, 503: true, 504: true, 400: false, 401: false, 412: false} {
		if got := iothub.IsRetryable(&iothub.Error{Status: status}); got != want {
			t.Errorf("status %d: got %v, want %v", status, got, want)
		}
	}
	if !iothub.IsRetryable(&iothub.Error{Status: 404, Code: iothub.CodeDeviceNotOnline}) {
		t.Error("device not online should be retryable")
	}
	if iothub.IsRetryable(errors.New("plain")) {
		t.Error("plain error should not be retryable")
	}
}

func FuzzParseError(f *testing.F) {
	f.Add(404, `{"Message":"{\"errorCode\":404103}"}`)
	f.Add(500, `{"Message":"ErrorCode:X;y"}`)
	f.Add(429, `{"Message":{"errorCode":"x"}}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		e := iothub.ParseError(status, http.Header{"Retry-After": {body}}, []byte(body))
		_ = e.Error()
		_ = e.Kind()
	})
}
