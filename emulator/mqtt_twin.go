package emulator

import (
	"encoding/json"
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/hubflow/hubflow/iothub"
)

// twinErrorBody is the body of a twin error answer over MQTT. Device SDKs
// ignore the status in the topic and look for errorCode in the body.
func twinErrorBody(code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}{code, msg})
	return b
}

// twinAnswer writes a twin response to cl if it subscribed to twin
// responses; a device that did not gets none, as on the hub.
func (h *Hub) twinAnswer(cl *mqtt.Client, d *device, status int, rid string, version int64, body []byte) {
	if !hasSub(cl, iothub.TopicTwinResponseFilter) {
		h.log.Debug("twin response not sent: device is not subscribed to twin responses", "device", d.id)
		return
	}
	if err := writePublish(cl, iothub.TwinResponseTopic(status, rid, version), body); err != nil {
		h.log.Debug("twin response not delivered", "device", d.id, "error", err)
	}
}

// mqttMeter applies quotas and the throttle fault to a device's twin
// operation, answering 429 on the twin response topic when refused.
func (h *Hub) mqttMeter(cl *mqtt.Client, d *device, o op, rid string) bool {
	now := h.now()
	_, storm := h.faults.throttled(now)
	if !storm {
		if ok, _ := h.quota.take(o, 1, now); ok {
			return true
		}
	}
	h.stats.throttled.Add(1)
	h.twinAnswer(cl, d, 429, rid, 0, twinErrorBody(iothub.CodeThrottlingException, "Throttled: the hub's limit for "+o.String()+" is exhausted."))
	return false
}

// mqttTwinGet answers $iothub/twin/GET with the desired and reported
// sections (values and $version, no $metadata).
func (h *Hub) mqttTwinGet(cl *mqtt.Client, d *device, rid string) {
	if !h.mqttMeter(cl, d, opTwinRead, rid) {
		return
	}
	h.stats.twinReads.Add(1)
	d.mu.Lock()
	doc := map[string]any{
		"desired":  deviceSection(d.twin.desired, d.twin.desVer),
		"reported": deviceSection(d.twin.reported, d.twin.repVer),
	}
	d.mu.Unlock()
	body, _ := marshalJSON(doc)
	h.twinAnswer(cl, d, 200, rid, 0, body)
}

// mqttReported applies a reported patch and answers 204 with the new
// reported version, or 400 with an errorCode body.
func (h *Hub) mqttReported(cl *mqtt.Client, d *device, rid string, payload []byte) {
	if !h.mqttMeter(cl, d, opTwinUpdate, rid) {
		return
	}
	h.stats.twinUpdates.Add(1)
	patch, err := parseReported(payload)
	if err != nil {
		code := iothub.CodeArgumentInvalid
		if errors.Is(err, errBodyNotJSON) {
			code = iothub.CodeIotHubFormatError
		}
		h.twinAnswer(cl, d, 400, rid, 0, twinErrorBody(code, err.Error()))
		return
	}
	now := h.now()
	d.mu.Lock()
	version, err := d.twin.patchReported(patch, now)
	if err == nil {
		d.invalidate(true)
		d.reportedLog = append(d.reportedLog, ReportedPatch{Received: now, Version: version, Patch: append(json.RawMessage(nil), payload...)})
		if len(d.reportedLog) > maxReportedLog {
			d.reportedLog = append(d.reportedLog[:0:0], d.reportedLog[len(d.reportedLog)-maxReportedLog:]...)
		}
	}
	d.mu.Unlock()
	if err != nil {
		h.twinAnswer(cl, d, 400, rid, 0, twinErrorBody(iothub.CodeArgumentInvalid, err.Error()))
		return
	}
	h.changed()
	h.twinAnswer(cl, d, 204, rid, version, nil)
}

// parseReported decodes and validates a device's reported patch.
func parseReported(payload []byte) (map[string]any, error) {
	v, err := decodeJSON(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBodyNotJSON, err)
	}
	patch, ok := v.(map[string]any)
	if !ok {
		return nil, invalidf("a reported patch must be a JSON object")
	}
	if err := normalizePatch(patch, 1); err != nil {
		return nil, err
	}
	return patch, nil
}
