package iothub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes the hub sends (six digits, the first three are the HTTP status).
const (
	CodeArgumentInvalid          = 400004
	CodeIotHubFormatError        = 400006
	CodeIotHubUnauthorizedAccess = 401002
	CodeIotHubUnauthorized       = 401003
	CodeIotHubQuotaExceeded      = 403002
	CodeDeviceNotFound           = 404001
	CodeJobNotFound              = 404002
	CodeDeviceNotOnline          = 404103
	CodeDeviceAlreadyExists      = 409001
	CodePreconditionFailed       = 412001
	CodeMessageTooLarge          = 413001
	CodeThrottlingException      = 429001
	CodeServerError              = 500001
	CodeServiceUnavailable       = 503001
	CodeGatewayTimeout           = 504101
)

// codeNames maps codes to the names the hub puts in the iothub-errorcode header.
var codeNames = map[int]string{
	CodeArgumentInvalid:          "ArgumentInvalid",
	CodeIotHubFormatError:        "IotHubFormatError",
	CodeIotHubUnauthorizedAccess: "IotHubUnauthorizedAccess",
	CodeIotHubUnauthorized:       "IotHubUnauthorized",
	CodeIotHubQuotaExceeded:      "IotHubQuotaExceeded",
	CodeDeviceNotFound:           "DeviceNotFound",
	CodeJobNotFound:              "JobNotFound",
	CodeDeviceNotOnline:          "DeviceNotOnline",
	CodeDeviceAlreadyExists:      "DeviceAlreadyExists",
	CodePreconditionFailed:       "PreconditionFailed",
	CodeMessageTooLarge:          "MessageTooLarge",
	CodeThrottlingException:      "ThrottlingException",
	CodeServerError:              "ServerError",
	CodeServiceUnavailable:       "ServiceUnavailable",
	CodeGatewayTimeout:           "GatewayTimeout",
}

// CodeName returns the hub's name for an error code, or "" when unknown.
func CodeName(code int) string { return codeNames[code] }

// Kind classifies a hub error by what a caller should do about it.
type Kind int

// Kinds of hub errors.
const (
	KindOther              Kind = iota
	KindBadRequest              // the request is wrong; retrying will not help
	KindUnauthorized            // credentials are bad, expired or lack a permission
	KindDeviceNotFound          // no such device identity
	KindDeviceNotOnline         // the device is not connected (or not subscribed to methods)
	KindPreconditionFailed      // If-Match etag mismatch
	KindConflict                // the identity already exists
	KindTooLarge                // payload over the hub's limit
	KindThrottled               // 429: slow down, then retry
	KindQuotaExceeded           // 403 daily quota or tier limit
	KindGatewayTimeout          // the device did not answer in time
	KindTransient               // 5xx server error or unavailable: retry with backoff
)

var kindNames = [...]string{"other", "bad request", "unauthorized", "device not found",
	"device not online", "precondition failed", "conflict", "too large", "throttled",
	"quota exceeded", "gateway timeout", "transient server error"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is an error answered by the hub.
type Error struct {
	Status     int           // HTTP status
	Code       int           // six-digit hub error code, 0 when the body had none
	Message    string        // the hub's human-readable message
	TrackingID string        // the hub's tracking id, when sent
	RetryAfter time.Duration // from Retry-After, 0 when absent
	Op         string        // what the client was doing, e.g. "invoke method"
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "hub answered %d", e.Status)
	if e.Code != 0 {
		fmt.Fprintf(&b, " (%d", e.Code)
		if n := CodeName(e.Code); n != "" {
			b.WriteString(" " + n)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Kind classifies e.
func (e *Error) Kind() Kind {
	switch e.Code {
	case CodeDeviceNotOnline:
		return KindDeviceNotOnline
	case CodeDeviceNotFound:
		return KindDeviceNotFound
	case CodeGatewayTimeout:
		return KindGatewayTimeout
	case CodeIotHubQuotaExceeded:
		return KindQuotaExceeded
	}
	switch s := e.Status; {
	case s == http.StatusTooManyRequests:
		return KindThrottled
	case s == http.StatusPreconditionFailed:
		return KindPreconditionFailed
	case s == http.StatusUnauthorized:
		return KindUnauthorized
	case s == http.StatusForbidden:
		return KindQuotaExceeded
	case s == http.StatusConflict:
		return KindConflict
	case s == http.StatusRequestEntityTooLarge:
		return KindTooLarge
	case s == http.StatusNotFound:
		// A 404 without a code: the legacy body names it, else assume the device.
		if strings.Contains(e.Message, "DeviceNotOnline") {
			return KindDeviceNotOnline
		}
		return KindDeviceNotFound
	case s == http.StatusGatewayTimeout:
		return KindGatewayTimeout
	case s >= 500:
		return KindTransient
	case s >= 400:
		return KindBadRequest
	}
	return KindOther
}

// KindOf returns the Kind of the first *Error in err's chain, or KindOther.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind()
	}
	return KindOther
}

// IsRetryable reports whether err is worth retrying after a delay: the device
// was offline, the hub throttled or failed transiently, or the device did not
// answer in time.
func IsRetryable(err error) bool {
	switch KindOf(err) {
	case KindDeviceNotOnline, KindThrottled, KindTransient, KindGatewayTimeout:
		return true
	}
	return false
}

// RetryAfterOf returns the hub's requested delay carried by err, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorDetail is the inner error object of the hub's current error format.
type ErrorDetail struct {
	ErrorCode    int            `json:"errorCode"`
	TrackingID   string         `json:"trackingId,omitempty"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info"`
	TimestampUTC string         `json:"timestampUtc,omitempty"`
}

// errorEnvelope is the outer object: Message holds ErrorDetail as a JSON string
// (current format) or "ErrorCode:Name;text" (legacy format).
type errorEnvelope struct {
	Message          json.RawMessage `json:"Message"`
	ExceptionMessage string          `json:"ExceptionMessage"`
}

// ErrorBody renders the hub's current error format for code with message and
// info (nil info becomes {}), as the emulator answers.
func ErrorBody(code int, message string, info map[string]any, trackingID string, now time.Time) []byte {
	if info == nil {
		info = map[string]any{}
	}
	inner, _ := json.Marshal(ErrorDetail{
		ErrorCode: code, TrackingID: trackingID, Message: message, Info: info,
		TimestampUTC: now.UTC().Format(time.RFC3339Nano),
	})
	out, _ := json.Marshal(struct {
		Message          string `json:"Message"`
		ExceptionMessage string `json:"ExceptionMessage"`
	}{string(inner), ""})
	return out
}

// ParseError builds an *Error from a non-2xx answer. It understands the
// current format (Message holding escaped JSON, or an object), the legacy
// "ErrorCode:Name;text" form, a bare ErrorDetail object and the
// iothub-errorcode header, and falls back to the status alone. It never
// fails: an answer that is not of any documented shape still gives an Error.
func ParseError(status int, header http.Header, body []byte) *Error {
	e := &Error{Status: status}
	if header != nil {
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"))
	}
	var detail ErrorDetail
	if len(bytes.TrimSpace(body)) > 0 {
		var env errorEnvelope
		// encoding/json matches member names case-insensitively, so a bare
		// detail's "message" would also fill env.Message: try the bare form first.
		if json.Unmarshal(body, &detail) == nil && detail.ErrorCode != 0 {
			// bare ErrorDetail object
		} else if detail = (ErrorDetail{}); json.Unmarshal(body, &env) == nil && len(env.Message) > 0 {
			var msg string
			if json.Unmarshal(env.Message, &msg) == nil {
				if json.Unmarshal([]byte(msg), &detail) != nil || detail.ErrorCode == 0 && detail.Message == "" {
					detail = parseLegacyMessage(msg)
				}
			} else {
				_ = json.Unmarshal(env.Message, &detail)
			}
			if detail.TrackingID == "" && strings.HasPrefix(env.ExceptionMessage, "Tracking ID:") {
				detail.TrackingID = strings.TrimPrefix(env.ExceptionMessage, "Tracking ID:")
			}
		} else if json.Unmarshal(body, &detail) != nil {
			detail = ErrorDetail{}
		}
	}
	e.Code, e.Message, e.TrackingID = detail.ErrorCode, detail.Message, detail.TrackingID
	if e.Code == 0 && header != nil {
		if name := header.Get("iothub-errorcode"); name != "" {
			e.Code = codeByName(name)
			if e.Message == "" {
				e.Message = name
			}
		}
	}
	if e.Code != 0 && e.Code/1000 != status && status != 0 {
		// A code that contradicts the status is not trusted for classification.
		if e.Message == "" {
			e.Message = strconv.Itoa(e.Code)
		}
		e.Code = 0
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

func parseLegacyMessage(msg string) ErrorDetail {
	rest, ok := strings.CutPrefix(msg, "ErrorCode:")
	if !ok {
		return ErrorDetail{Message: msg}
	}
	name, text, _ := strings.Cut(rest, ";")
	return ErrorDetail{ErrorCode: codeByName(name), Message: strings.TrimSpace(name + ": " + text)}
}

func codeByName(name string) int {
	for c, n := range codeNames {
		if strings.EqualFold(n, name) {
			return c
		}
	}
	return 0
}

func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 && n < 86400 {
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
