package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hubflow/hubflow/iothub"
)

// Direct-method limits.
const (
	defaultResponseTimeout = 30
	minResponseTimeout     = 5
	maxResponseTimeout     = 300
	maxConnectTimeout      = 300
	maxMethodNameLength    = 1024
	// connectGrace bounds how long a call with connectTimeoutInSeconds 0
	// waits for a device whose connection is being accepted right now.
	connectGrace = 5 * time.Second
)

// callResult is how a pending call ended on the device side.
type callResult struct {
	status      int
	payload     []byte
	unavailable bool // the device disconnected first
}

// call is a method request awaiting the device's answer. Whoever removes
// it from its device's pending map finishes it, so it finishes once.
type call struct {
	ch chan callResult
}

func (c *call) finish(r callResult) {
	select {
	case c.ch <- r:
	default:
	}
}

// methodRequest is a validated invoke body.
type methodRequest struct {
	name            string
	payload         []byte // JSON text forwarded to the device; never empty
	responseTimeout time.Duration
	connectTimeout  time.Duration
}

// parseMethodRequest validates the body of POST /twins/{id}/methods. Member
// names match case-insensitively (Go's client sends them capitalised). An
// absent, null or "" payload is forwarded as null: device SDKs need a JSON
// body.
func parseMethodRequest(raw []byte) (methodRequest, *regError) {
	var body struct {
		MethodName               string          `json:"methodName"`
		Payload                  json.RawMessage `json:"payload"`
		ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
		ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return methodRequest{}, regErrorf(http.StatusBadRequest, iothub.CodeIotHubFormatError, "The method request is not valid JSON: %v.", err)
	}
	if err := checkMethodName(body.MethodName); err != nil {
		return methodRequest{}, regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid, "%v", err)
	}
	req := methodRequest{name: body.MethodName, payload: body.Payload}
	switch p := bytes.TrimSpace(req.payload); {
	case len(p) == 0, string(p) == "null", string(p) == `""`:
		req.payload = []byte("null")
	default:
		req.payload = p
	}
	rt := defaultResponseTimeout
	if v := body.ResponseTimeoutInSeconds; v != nil && *v != 0 {
		rt = *v
	}
	if rt < minResponseTimeout || rt > maxResponseTimeout {
		return methodRequest{}, regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid,
			"responseTimeoutInSeconds must be from %d to %d; got %d.", minResponseTimeout, maxResponseTimeout, rt)
	}
	ct := 0
	if v := body.ConnectTimeoutInSeconds; v != nil {
		ct = *v
	}
	if ct < 0 || ct > maxConnectTimeout {
		return methodRequest{}, regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid,
			"connectTimeoutInSeconds must be from 0 to %d; got %d.", maxConnectTimeout, ct)
	}
	req.responseTimeout = time.Duration(rt) * time.Second
	req.connectTimeout = time.Duration(ct) * time.Second
	return req, nil
}

// checkMethodName enforces the hub's character rules; the name is also an
// MQTT topic level, so wildcards and '/' are out.
func checkMethodName(name string) error {
	if name == "" {
		return fmt.Errorf("methodName is missing")
	}
	if len(name) > maxMethodNameLength {
		return fmt.Errorf("methodName is longer than %d bytes", maxMethodNameLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("methodName is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("$()<>@,;:\\\"/[]?={} \t#+", r) {
			return fmt.Errorf("methodName %q contains %q, which method names cannot use", name, r)
		}
	}
	return nil
}

// hhmmss formats a timeout as the hub's info.timeout does.
func hhmmss(d time.Duration) string {
	s := int(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// invokeMethod is POST /twins/{id}/methods: wait for the device to be
// method-online (connectTimeoutInSeconds), deliver the request on
// $iothub/methods/POST/<name>/?$rid=<rid>, and wait for the answer
// (responseTimeoutInSeconds).
func (h *Hub) invokeMethod(w http.ResponseWriter, r *http.Request, id string) {
	raw, ok := h.readBody(w, r, maxRequestBody)
	if !ok {
		return
	}
	req, rerr := parseMethodRequest(raw)
	if rerr != nil {
		h.writeError(w, rerr.status, rerr.code, rerr.msg, nil)
		return
	}
	// The hub's limit is 128 KB of payload; a bigger one is refused with
	// 413 MessageTooLarge, the code the hub uses for oversized messages.
	if len(req.payload) > iothub.MaxMethodPayload {
		h.writeError(w, http.StatusRequestEntityTooLarge, iothub.CodeMessageTooLarge,
			fmt.Sprintf("The method payload is %d bytes; the limit is %d.", len(req.payload), iothub.MaxMethodPayload), nil)
		return
	}
	if !h.meter(w, opMethod, methodCost(len(req.payload))) {
		return
	}
	d := h.reg.get(id)
	if d == nil {
		h.deviceNotFound(w, id)
		return
	}
	inv := Invocation{DeviceID: id, Method: req.name}
	res := h.deliver(r, d, req, &inv)
	inv.Answered = h.now()
	if inv.Outcome != "" {
		h.witness.add(inv)
	}
	switch inv.Outcome {
	case OutcomeAnswered:
		h.writeJSON(w, http.StatusOK, struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}{res.status, devicePayload(res.payload)})
	case OutcomeOffline:
		h.writeError(w, http.StatusNotFound, iothub.CodeDeviceNotOnline, "Timed out waiting for device to connect.",
			map[string]any{"timeout": hhmmss(req.connectTimeout)})
	case OutcomeTimeout, OutcomeDropped:
		h.stats.methodsTimedOut.Add(1)
		h.writeError(w, http.StatusGatewayTimeout, iothub.CodeGatewayTimeout, "Timed out waiting for the response from device.", nil)
	case OutcomeUnavailable:
		// The hub answers a device that disconnects before answering with
		// a 404 saying "Device unavailable" (SDKs raise their device-not-
		// found/offline error for it), so callers treat it as offline.
		h.writeError(w, http.StatusNotFound, iothub.CodeDeviceNotOnline, "Device unavailable.", nil)
	case OutcomeCancelled:
		h.writeError(w, http.StatusServiceUnavailable, iothub.CodeServiceUnavailable, "The call was cancelled: the hub is shutting down or the caller went away.", nil)
	default:
		h.deviceNotFound(w, id)
	}
}

// deliver runs one call and fills inv's outcome, rid and send time.
func (h *Hub) deliver(r *http.Request, d *device, req methodRequest, inv *Invocation) callResult {
	ctx := r.Context()
	var connectDeadline, grace <-chan time.Time
	if req.connectTimeout > 0 {
		c, stop := h.timer(req.connectTimeout)
		defer stop()
		connectDeadline = c
	}
	for {
		d.mu.Lock()
		if d.deleted {
			d.mu.Unlock()
			return callResult{} // no outcome: answered as an unknown device
		}
		if d.methodsOn {
			d.mu.Unlock()
			break
		}
		changed := d.stateCh
		connecting := d.client != nil && !d.established
		d.mu.Unlock()
		deadline := connectDeadline
		if deadline == nil {
			if !connecting {
				inv.Outcome = OutcomeOffline
				return callResult{}
			}
			// The device has been accepted and its CONNACK is on the way;
			// a resumed session may make it method-online at once, so
			// the call waits for that rather than failing in the gap.
			if grace == nil {
				c, stop := h.timer(connectGrace)
				defer stop()
				grace = c
			}
			deadline = grace
		}
		select {
		case <-changed:
		case <-deadline:
			inv.Outcome = OutcomeOffline
			return callResult{}
		case <-ctx.Done():
			inv.Outcome = OutcomeCancelled
			return callResult{}
		case <-h.done:
			inv.Outcome = OutcomeCancelled
			return callResult{}
		}
	}

	responseDeadline, stop := h.timer(req.responseTimeout)
	defer stop()
	latency, drop := h.faults.methodFault()
	if latency > 0 {
		delay, stopDelay := h.timer(latency)
		defer stopDelay()
		select {
		case <-delay:
		case <-responseDeadline:
			inv.Outcome = OutcomeTimeout
			return callResult{}
		case <-ctx.Done():
			inv.Outcome = OutcomeCancelled
			return callResult{}
		case <-h.done:
			inv.Outcome = OutcomeCancelled
			return callResult{}
		}
	}

	rid := h.nextRID()
	c := &call{ch: make(chan callResult, 1)}
	d.mu.Lock()
	if !d.methodsOn || d.client == nil {
		d.mu.Unlock()
		inv.Outcome = OutcomeUnavailable
		return callResult{}
	}
	cl := d.client
	if !drop {
		d.pending[rid] = c
	}
	d.mu.Unlock()
	inv.RID, inv.Sent = rid, h.now()
	h.stats.methodsInvoked.Add(1)
	if drop {
		inv.Outcome = OutcomeDropped
		select {
		case <-responseDeadline:
		case <-ctx.Done():
			inv.Outcome = OutcomeCancelled
		case <-h.done:
			inv.Outcome = OutcomeCancelled
		}
		return callResult{}
	}
	if err := writePublish(cl, iothub.MethodRequestTopic(req.name, rid), req.payload); err != nil {
		h.dropPending(d, rid)
		inv.Outcome = OutcomeUnavailable
		return callResult{}
	}
	select {
	case res := <-c.ch:
		if res.unavailable {
			inv.Outcome = OutcomeUnavailable
			return res
		}
		inv.Outcome, inv.Status = OutcomeAnswered, res.status
		return res
	case <-responseDeadline:
		inv.Outcome = OutcomeTimeout
	case <-ctx.Done():
		inv.Outcome = OutcomeCancelled
	case <-h.done:
		inv.Outcome = OutcomeCancelled
	}
	h.dropPending(d, rid)
	return callResult{}
}

func (h *Hub) dropPending(d *device, rid string) {
	d.mu.Lock()
	delete(d.pending, rid)
	d.mu.Unlock()
}

// methodAnswered delivers a device's method response to the waiting call.
// Answers for unknown or expired request ids are dropped, as on the hub.
func (h *Hub) methodAnswered(d *device, rid string, status int, payload []byte) {
	d.mu.Lock()
	c := d.pending[rid]
	delete(d.pending, rid)
	d.mu.Unlock()
	if c == nil {
		h.log.Debug("method answer for no pending call", "device", d.id, "rid", rid)
		return
	}
	h.stats.methodsAnswered.Add(1)
	c.finish(callResult{status: status, payload: payload})
}

// devicePayload turns a device's response body into the JSON the hub
// returns: empty becomes null and text that is not JSON becomes a JSON
// string, so the HTTP answer is always valid JSON.
func devicePayload(b []byte) json.RawMessage {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(t) {
		return json.RawMessage(t)
	}
	s, _ := json.Marshal(strings.ToValidUTF8(string(b), "\uFFFD"))
	return s
}
