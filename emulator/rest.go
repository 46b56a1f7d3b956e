package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// maxRequestBody caps REST request bodies; method payloads have their own
// (smaller) limit.
const maxRequestBody = 1 << 20

// ServeHTTP is the REST front end. Every answer is JSON with the hub's
// Content-Type; errors use the hub's current error body and the
// iothub-errorcode header.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if status, ok := h.faults.restFailure(h.now()); ok {
		code := status*1000 + 1
		h.writeError(w, status, code, "The hub is failing requests (injected fault).", nil)
		return
	}
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, err.Error(), nil)
		return
	}
	rights, err := h.authorizeService(r.Header.Get("Authorization"), r.URL.Path)
	if err != nil {
		var ae *authError
		msg := "Unauthorized"
		if errors.As(err, &ae) {
			msg = "Unauthorized: " + ae.msg
		}
		h.writeError(w, http.StatusUnauthorized, iothub.CodeIotHubUnauthorizedAccess, msg, nil)
		return
	}
	rt, ok := h.route(r.Method, segs)
	if !ok {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid,
			fmt.Sprintf("The emulator does not support %s %s.", r.Method, r.URL.Path), nil)
		return
	}
	if rights&rt.need == 0 {
		h.writeError(w, http.StatusUnauthorized, iothub.CodeIotHubUnauthorizedAccess,
			fmt.Sprintf("Unauthorized: the policy lacks %s for %s %s.", rt.needName(), r.Method, r.URL.Path), nil)
		return
	}
	rt.handle(w, r, rt.id)
}

// route is a resolved REST operation.
type route struct {
	need   perm // any one of these rights suffices
	id     string
	handle func(w http.ResponseWriter, r *http.Request, id string)
}

func (rt route) needName() string {
	var names []string
	for _, p := range []struct {
		p    perm
		name string
	}{{permRegistryRead, "RegistryRead"}, {permRegistryWrite, "RegistryWrite"}, {permServiceConnect, "ServiceConnect"}, {permDeviceConnect, "DeviceConnect"}} {
		if rt.need&p.p != 0 {
			names = append(names, p.name)
		}
	}
	return strings.Join(names, " or ")
}

func (h *Hub) route(method string, segs []string) (route, bool) {
	n := len(segs)
	first := ""
	if n > 0 {
		first = segs[0]
	}
	switch {
	case n == 1 && first == "devices" && method == http.MethodGet:
		return route{need: permRegistryRead, handle: h.listDevices}, true
	case n == 1 && first == "devices" && method == http.MethodPost:
		return route{need: permRegistryWrite, handle: h.bulkDevices}, true
	case n == 2 && first == "devices" && segs[1] == "query" && method == http.MethodPost:
		return route{need: permServiceConnect | permRegistryRead, handle: h.queryDevices}, true
	case n == 2 && first == "devices" && method == http.MethodGet:
		return route{need: permRegistryRead, id: segs[1], handle: h.getDevice}, true
	case n == 2 && first == "devices" && method == http.MethodPut:
		return route{need: permRegistryWrite, id: segs[1], handle: h.putDevice}, true
	case n == 2 && first == "devices" && method == http.MethodDelete:
		return route{need: permRegistryWrite, id: segs[1], handle: h.deleteDevice}, true
	case n == 2 && first == "statistics" && segs[1] == "devices" && method == http.MethodGet:
		return route{need: permRegistryRead, handle: h.registryStats}, true
	case n == 2 && first == "statistics" && segs[1] == "service" && method == http.MethodGet:
		return route{need: permServiceConnect | permRegistryRead, handle: h.serviceStats}, true
	case n == 2 && first == "twins" && method == http.MethodGet:
		return route{need: permServiceConnect | permRegistryRead, id: segs[1], handle: h.getTwin}, true
	case n == 2 && first == "twins" && method == http.MethodPatch:
		return route{need: permServiceConnect | permRegistryWrite, id: segs[1], handle: h.patchTwin}, true
	case n == 2 && first == "twins" && method == http.MethodPut:
		return route{need: permServiceConnect | permRegistryWrite, id: segs[1], handle: h.replaceTwin}, true
	case n == 3 && first == "twins" && segs[2] == "methods" && method == http.MethodPost:
		return route{need: permServiceConnect, id: segs[1], handle: h.invokeMethod}, true
	}
	return route{}, false
}

// splitPath splits an escaped URL path into decoded segments, so that ids
// containing '/'-free escapes (such as %23 for '#') arrive intact.
func splitPath(escaped string) ([]string, error) {
	escaped = strings.Trim(escaped, "/")
	if escaped == "" {
		return nil, nil
	}
	parts := strings.Split(escaped, "/")
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("the request path has a bad escape in %q", p)
		}
		parts[i] = s
	}
	return parts, nil
}

// writeJSON answers status with v encoded as JSON.
func (h *Hub) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		h.writeError(w, http.StatusInternalServerError, iothub.CodeServerError, "encode response", nil)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers with the hub's current error format.
func (h *Hub) writeError(w http.ResponseWriter, status, code int, msg string, info map[string]any) {
	if name := iothub.CodeName(code); name != "" {
		w.Header().Set("iothub-errorcode", name)
	}
	now := h.now()
	body := iothub.ErrorBody(code, msg, info, trackingID(now), now)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// throttle answers 429 ThrottlingException with Retry-After in seconds.
// Retry-After is not documented for IoT Hub; the emulator sends the time
// until its bucket could pay, and clients may ignore it.
func (h *Hub) throttle(w http.ResponseWriter, o op, retryAfter time.Duration) {
	h.stats.throttled.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	h.writeError(w, http.StatusTooManyRequests, iothub.CodeThrottlingException,
		fmt.Sprintf("Throttled: the hub's limit for %s is exhausted; retry after %d s.", o, int(retryAfter/time.Second)), nil)
}

// meter spends n units of o, answering 429 when the quota (or a throttle
// fault) refuses.
func (h *Hub) meter(w http.ResponseWriter, o op, n int) bool {
	now := h.now()
	if ra, on := h.faults.throttled(now); on {
		h.throttle(w, o, ra)
		return false
	}
	if ok, ra := h.quota.take(o, n, now); !ok {
		h.throttle(w, o, ra)
		return false
	}
	return true
}

// readBody reads a request body of at most limit bytes, answering 413 (and
// returning false) when it is larger.
func (h *Hub) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.writeError(w, http.StatusRequestEntityTooLarge, iothub.CodeMessageTooLarge,
				fmt.Sprintf("The request body is larger than %d bytes.", limit), nil)
			return nil, false
		}
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, "The request body could not be read.", nil)
		return nil, false
	}
	return b, true
}

// badJSON answers 400 IotHubFormatError for a body that does not decode.
func (h *Hub) badJSON(w http.ResponseWriter, what string, err error) {
	h.writeError(w, http.StatusBadRequest, iothub.CodeIotHubFormatError,
		fmt.Sprintf("The %s is not valid JSON: %v.", what, err), nil)
}

func (h *Hub) deviceNotFound(w http.ResponseWriter, id string) {
	h.writeError(w, http.StatusNotFound, iothub.CodeDeviceNotFound,
		fmt.Sprintf("Device %q is not registered with this hub.", id), nil)
}

// ifMatches reports whether an If-Match header value allows a change to a
// resource with etag: absent, "*", "\"*\"", the quoted etag or the bare
// etag.
func ifMatches(header, etag string) bool {
	v := strings.TrimSpace(header)
	if v == "" {
		return true
	}
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v == "*" || v == etag
}

// trackingID is an opaque id for an error answer, in the hub's style.
func trackingID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-G:0-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05")
}

// member returns the value of key in m, matching the name
// case-insensitively, as the hub's .NET deserializer does.
func member[V any](m map[string]V, key string) (V, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	var zero V
	return zero, false
}
