package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hubflow/hubflow/iothub"
)

// Direct-method timeout bounds and defaults, as the hub applies them.
const (
	DefaultResponseTimeout = 30 * time.Second
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	MaxConnectTimeout      = 300 * time.Second
)

const invokeVerb = "invoke method"

// invokeMargin is added to a call's response and connect timeouts to bound
// the HTTP request: the hub itself answers 404103 or 504101 when those run
// out, so the margin only covers the network and the hub's own latency.
const invokeMargin = 10 * time.Second

// forbiddenMethodChars may not appear in a method name: the hub's list, plus
// the MQTT wildcards, since the name becomes a topic level on the device side.
const forbiddenMethodChars = "$()<>@,;:\\\"/[]?={} \t+#"

// MethodCall is one direct-method invocation.
type MethodCall struct {
	// Name is the method name the device registered; it may not contain
	// $ ( ) < > @ , ; : \ " / [ ] ? = { } + #, spaces, tabs or control
	// characters.
	Name string
	// Payload is sent to the device as JSON; empty means null. It must be
	// valid JSON and at most iothub.MaxMethodPayload bytes once compacted.
	Payload json.RawMessage
	// ResponseTimeout is how long the hub waits for the device's answer,
	// 5–300 s, rounded up to whole seconds. Zero means 30 s.
	ResponseTimeout time.Duration
	// ConnectTimeout is how long the hub waits for an offline device to
	// connect, 0–300 s, rounded up to whole seconds. Zero means the device
	// must already be connected.
	ConnectTimeout time.Duration
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// body checks m and renders the request body. The body is written by hand:
// the order of its members is the official SDKs', and the payload is
// compacted rather than re-encoded.
func (m *MethodCall) body() ([]byte, int64, int64, error) {
	if m.Name == "" {
		return nil, 0, 0, fmt.Errorf("%w: method name is empty", ErrInvalidInput)
	}
	if !utf8.ValidString(m.Name) {
		return nil, 0, 0, fmt.Errorf("%w: method name is not valid UTF-8", ErrInvalidInput)
	}
	for _, r := range m.Name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(forbiddenMethodChars, r) {
			return nil, 0, 0, fmt.Errorf("%w: method name %q contains %q, which the hub does not allow", ErrInvalidInput, m.Name, r)
		}
	}
	rt := m.ResponseTimeout
	if rt == 0 {
		rt = DefaultResponseTimeout
	}
	if rt < MinResponseTimeout || rt > MaxResponseTimeout {
		return nil, 0, 0, fmt.Errorf("%w: response timeout %s is outside 5s–5m0s", ErrInvalidInput, m.ResponseTimeout)
	}
	if m.ConnectTimeout < 0 || m.ConnectTimeout > MaxConnectTimeout {
		return nil, 0, 0, fmt.Errorf("%w: connect timeout %s is outside 0s–5m0s", ErrInvalidInput, m.ConnectTimeout)
	}
	rs, cs := seconds(rt), seconds(m.ConnectTimeout)

	var b bytes.Buffer
	b.Grow(96 + len(m.Name) + len(m.Payload))
	b.WriteString(`{"methodName":"`)
	b.WriteString(m.Name) // checked above: nothing in it needs escaping
	b.WriteString(`","payload":`)
	if len(bytes.TrimSpace(m.Payload)) == 0 {
		b.WriteString("null")
	} else {
		start := b.Len()
		if err := json.Compact(&b, m.Payload); err != nil {
			return nil, 0, 0, fmt.Errorf("%w: payload is not valid JSON: %v", ErrInvalidInput, err)
		}
		if n := b.Len() - start; n > iothub.MaxMethodPayload {
			return nil, 0, 0, fmt.Errorf("%w: payload is %d bytes, over the hub's %d", ErrInvalidInput, n, iothub.MaxMethodPayload)
		}
	}
	b.WriteString(`,"responseTimeoutInSeconds":`)
	b.WriteString(strconv.FormatInt(rs, 10))
	b.WriteString(`,"connectTimeoutInSeconds":`)
	b.WriteString(strconv.FormatInt(cs, 10))
	b.WriteByte('}')
	return b.Bytes(), rs, cs, nil
}

// methodAnswer is the hub's 200 body; Status is a pointer so that a missing
// status is told apart from 0.
type methodAnswer struct {
	Status  *int            `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// InvokeMethod calls a direct method on deviceID and returns the device's
// status and payload. The call is bounded by the response and connect
// timeouts plus a margin, and by ctx.
//
// A device that answered, whatever status it chose, gives a MethodResponse
// and a nil error. The hub's refusals are *iothub.Error: unknown device
// (KindDeviceNotFound), device offline (KindDeviceNotOnline), no answer in
// time (KindGatewayTimeout), throttling (KindThrottled, with RetryAfter).
// Bad input wraps ErrInvalidInput and sends nothing.
func (c *Client) InvokeMethod(ctx context.Context, deviceID string, call MethodCall) (*iothub.MethodResponse, error) {
	op := operation{verb: invokeVerb, method: call.Name, device: deviceID}
	if err := checkDeviceID(op, deviceID); err != nil {
		return nil, err
	}
	body, rs, cs, err := call.body()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	path, raw := idPath("/twins/", deviceID, "/methods")
	res, err := c.do(ctx, &request{
		op: op, method: http.MethodPost, path: path, rawPath: raw, body: body,
		timeout: time.Duration(rs+cs)*time.Second + invokeMargin,
	})
	if err != nil {
		return nil, err
	}
	var a methodAnswer
	if err := decode(op, res, &a, "a method result"); err != nil {
		return nil, err
	}
	if a.Status == nil {
		return nil, fmt.Errorf("%s: %w: method result has no status", op, ErrUnexpectedResponse)
	}
	return &iothub.MethodResponse{Status: *a.Status, Payload: a.Payload}, nil
}
