package service_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

func TestClient_ErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		wantKind  iothub.Kind
		wantCode  int
		wantRetry time.Duration
		wantMsg   string
		retryable bool
		wantTrack string
	}{
		{
			name:     "current format, device not online",
			status:   404,
			body:     `{"Message":"{\"errorCode\":404103,\"trackingId\":\"2ce04a2d-G:0-TimeStamp:08/24/2018 17:49:33\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2018-08-24T17:49:33.201157Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindDeviceNotOnline, wantCode: 404103, wantMsg: "Timed out waiting for device to connect.",
			retryable: true, wantTrack: "2ce04a2d-G:0-TimeStamp:08/24/2018 17:49:33",
		},
		{
			name:     "legacy format, device not online",
			status:   404,
			header:   map[string]string{"iothub-errorcode": "DeviceNotOnline"},
			body:     `{"Message":"ErrorCode:DeviceNotOnline;Timed out waiting for device to connect.","ExceptionMessage":"Tracking ID:abc-G:5-TimeStamp:01/18/2017 08:11:45"}`,
			wantKind: iothub.KindDeviceNotOnline, wantCode: 404103, wantMsg: "Timed out waiting for device to connect.",
			retryable: true, wantTrack: "abc-G:5-TimeStamp:01/18/2017 08:11:45",
		},
		{
			name:     "device not found",
			status:   404,
			body:     `{"Message":"{\"errorCode\":404001,\"trackingId\":\"t1\",\"message\":\"Device d9 not registered\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindDeviceNotFound, wantCode: 404001, wantMsg: "Device d9 not registered",
		},
		{
			name:     "gateway timeout",
			status:   504,
			body:     `{"Message":"{\"errorCode\":504101,\"trackingId\":\"t2\",\"message\":\"Timed out waiting for the response from device.\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindGatewayTimeout, wantCode: 504101, wantMsg: "Timed out waiting for the response from device.", retryable: true,
		},
		{
			name:     "throttled with Retry-After",
			status:   429,
			header:   map[string]string{"Retry-After": "7", "iothub-errorcode": "ThrottlingException"},
			body:     `{"Message":"{\"errorCode\":429001,\"trackingId\":\"t3\",\"message\":\"Throttling exception\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindThrottled, wantCode: 429001, wantRetry: 7 * time.Second, wantMsg: "Throttling exception", retryable: true,
		},
		{
			name:     "precondition failed",
			status:   412,
			body:     `{"Message":"{\"errorCode\":412001,\"trackingId\":\"t4\",\"message\":\"Precondition failed\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindPreconditionFailed, wantCode: 412001, wantMsg: "Precondition failed",
		},
		{
			name:     "server error",
			status:   500,
			body:     `{"Message":"{\"errorCode\":500001,\"trackingId\":\"t5\",\"message\":\"Internal error\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindTransient, wantCode: 500001, wantMsg: "Internal error", retryable: true,
		},
		{
			name: "unavailable, no body", status: 503, body: ``,
			wantKind: iothub.KindTransient, wantMsg: "Service Unavailable", retryable: true,
		},
		{
			name: "unauthorized", status: 401,
			body:     `{"Message":"{\"errorCode\":401002,\"trackingId\":\"t6\",\"message\":\"Unauthorized\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindUnauthorized, wantCode: 401002, wantMsg: "Unauthorized",
		},
		{
			name: "bad request", status: 400,
			body:     `{"Message":"{\"errorCode\":400004,\"trackingId\":\"t7\",\"message\":\"Bad responseTimeoutInSeconds\",\"info\":{},\"timestampUtc\":\"2025-05-01T10:00:00Z\"}","ExceptionMessage":""}`,
			wantKind: iothub.KindBadRequest, wantCode: 400004, wantMsg: "Bad responseTimeoutInSeconds",
		},
		{
			name: "garbage body falls back to the status", status: 502, body: `<html><body>Bad Gateway</body></html>`,
			wantKind: iothub.KindTransient, wantMsg: "Bad Gateway", retryable: true,
		},
		{
			name: "garbage 412 falls back to the status", status: 412, body: `not json at all {`,
			wantKind: iothub.KindPreconditionFailed,
		},
		{
			name: "redirect is not followed", status: 307, header: map[string]string{"Location": "https://elsewhere.example/"},
			wantKind: iothub.KindOther,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				answer(w, tt.status, tt.body)
			})
			c := h.client(t, service.Config{})
			_, err := c.InvokeMethod(context.Background(), "d1", service.MethodCall{Name: "reboot"})
			var he *iothub.Error
			if !errors.As(err, &he) {
				t.Fatalf("got %T %v, want *iothub.Error", err, err)
			}
			if he.Status != tt.status {
				t.Errorf("status: got %d, want %d", he.Status, tt.status)
			}
			if got := iothub.KindOf(err); got != tt.wantKind {
				t.Errorf("kind: got %v, want %v", got, tt.wantKind)
			}
			if he.Code != tt.wantCode {
				t.Errorf("code: got %d, want %d", he.Code, tt.wantCode)
			}
			if got := iothub.RetryAfterOf(err); got != tt.wantRetry {
				t.Errorf("retry after: got %s, want %s", got, tt.wantRetry)
			}
			if tt.wantMsg != "" && !strings.Contains(he.Message, tt.wantMsg) {
				t.Errorf("message: got %q, want it to contain %q", he.Message, tt.wantMsg)
			}
			if tt.wantTrack != "" && he.TrackingID != tt.wantTrack {
				t.Errorf("tracking id: got %q, want %q", he.TrackingID, tt.wantTrack)
			}
			if got := iothub.IsRetryable(err); got != tt.retryable {
				t.Errorf("retryable: got %v, want %v", got, tt.retryable)
			}
			if he.Op != `invoke method "reboot" on device "d1"` {
				t.Errorf("op: got %q, want the invoke operation", he.Op)
			}
			if got := h.count.Load(); got != 1 {
				t.Errorf("requests: got %d, want 1 (no retries, no redirects followed)", got)
			}
		})
	}
}

// TestClient_SecretsNotInErrors makes a hub echo the credentials it was
// sent; no error string may carry the key, the token or its signature.
func TestClient_SecretsNotInErrors(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		auth := r.Header.Get("Authorization")
		_, sig, _ := strings.Cut(auth, "sig=")
		sig, _, _ = strings.Cut(sig, "&")
		plain, _ := url.QueryUnescape(sig)
		msg := "denied: " + auth + " key " + testKey + " sig " + sig + " decoded " + plain
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write(iothub.ErrorBody(iothub.CodeIotHubUnauthorizedAccess, msg, nil, "track "+auth, time.Now()))
	})
	c := h.client(t, service.Config{})
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["invoke"] = c.InvokeMethod(ctx, "d1", service.MethodCall{Name: "m"})
	_, errs["get twin"] = c.GetTwin(ctx, "d1")
	_, errs["update twin"] = c.UpdateTwin(ctx, "d1", iothub.TwinPatch{Tags: map[string]any{"a": 1}}, "")
	_, errs["get device"] = c.GetDevice(ctx, "d1")
	_, errs["query"] = c.Query(ctx, "SELECT * FROM devices", 0).Next(ctx)
	lastAuth := h.last(t).Header.Get("Authorization")
	if lastAuth == "" {
		t.Fatal("got no Authorization header, want one")
	}
	_, sig, _ := strings.Cut(lastAuth, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	plainSig, _ := url.QueryUnescape(sig)
	for name, err := range errs {
		if iothub.KindOf(err) != iothub.KindUnauthorized {
			t.Errorf("%s: got %v, want an unauthorized error", name, err)
		}
		var he *iothub.Error
		errors.As(err, &he)
		for _, s := range []string{err.Error(), he.TrackingID} {
			for _, secret := range []string{testKey, lastAuth, sig, plainSig} {
				if strings.Contains(s, secret) {
					t.Errorf("%s: error text %q contains a secret", name, s)
				}
			}
		}
	}

	// A transport failure names the operation and carries no secret either.
	h.srv.Close()
	_, err := c.GetTwin(ctx, "d1")
	if err == nil || !strings.HasPrefix(err.Error(), `get twin "d1": `) || strings.Contains(err.Error(), testKey) {
		t.Errorf("after close: got %v, want a get-twin transport error without the key", err)
	}
}
