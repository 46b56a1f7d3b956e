package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hubflow/hubflow/iothub"
)

// deviceBody is a device identity as clients send it; member names match
// case-insensitively.
type deviceBody struct {
	DeviceID       string `json:"deviceId"`
	ID             string `json:"id"` // bulk import items name it "id"
	Status         string `json:"status"`
	StatusReason   string `json:"statusReason"`
	ETag           string `json:"eTag"`
	ImportMode     string `json:"importMode"`
	Authentication *struct {
		Type         string `json:"type"`
		SymmetricKey *struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
}

// regError is a registry failure mapped to a hub status and code.
type regError struct {
	status, code int
	msg          string
}

func (e *regError) Error() string { return e.msg }

func regErrorf(status, code int, format string, args ...any) *regError {
	return &regError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// checkIdentity validates the status and keys of a body.
func (b *deviceBody) checkIdentity() (status, primary, secondary string, err *regError) {
	status = strings.ToLower(b.Status)
	switch status {
	case "", "enabled", "disabled":
	default:
		return "", "", "", regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid, "status %q is not enabled or disabled", b.Status)
	}
	if a := b.Authentication; a != nil {
		switch strings.ToLower(a.Type) {
		case "", "sas":
		default:
			return "", "", "", regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid, "authentication type %q is not supported by the emulator; use sas", a.Type)
		}
		if k := a.SymmetricKey; k != nil {
			primary, secondary = k.PrimaryKey, k.SecondaryKey
		}
	}
	for _, k := range []string{primary, secondary} {
		if k != "" && !validKey(k) {
			return "", "", "", regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid, "symmetric keys must be base64 of 16 to 64 bytes")
		}
	}
	return status, primary, secondary, nil
}

// createDevice registers id from body; empty keys are generated.
func (h *Hub) createDevice(id string, body *deviceBody) (iothub.Device, *regError) {
	if err := validDeviceID(id); err != nil {
		return iothub.Device{}, regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid, "%v", err)
	}
	status, primary, secondary, rerr := body.checkIdentity()
	if rerr != nil {
		return iothub.Device{}, rerr
	}
	now := h.now()
	d := newDevice(id, now)
	if primary != "" {
		d.primaryKey = primary
	}
	if secondary != "" {
		d.secondaryKey = secondary
	}
	if status != "" {
		d.status = status
	}
	d.statusReason = body.StatusReason
	if err := h.reg.add(d); err != nil {
		return iothub.Device{}, regErrorf(http.StatusConflict, iothub.CodeDeviceAlreadyExists, "Device %q already exists.", id)
	}
	h.changed()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.identity(), nil
}

// updateDevice changes status and keys of an existing device when etag
// (an If-Match value) matches.
func (h *Hub) updateDevice(id, etag string, body *deviceBody) (iothub.Device, *regError) {
	d := h.reg.get(id)
	if d == nil {
		return iothub.Device{}, regErrorf(http.StatusNotFound, iothub.CodeDeviceNotFound, "Device %q is not registered with this hub.", id)
	}
	status, primary, secondary, rerr := body.checkIdentity()
	if rerr != nil {
		return iothub.Device{}, rerr
	}
	d.mu.Lock()
	if !ifMatches(etag, d.deviceETag()) {
		d.mu.Unlock()
		return iothub.Device{}, regErrorf(http.StatusPreconditionFailed, iothub.CodePreconditionFailed, "The etag does not match device %q's current etag.", id)
	}
	now := h.now()
	disconnect := false
	if status != "" && status != d.status {
		d.status, d.statusTime = status, now
		disconnect = status == "disabled"
	}
	d.statusReason = body.StatusReason
	if primary != "" && primary != d.primaryKey {
		d.primaryKey, disconnect = primary, true
	}
	if secondary != "" && secondary != d.secondaryKey {
		d.secondaryKey, disconnect = secondary, true
	}
	d.etag++
	d.invalidate(true)
	out := d.identity()
	cl := d.client
	d.mu.Unlock()
	h.changed()
	if disconnect && cl != nil {
		// A disabled device or one whose keys changed must authenticate again.
		cl.Stop(errIdentityChanged)
	}
	return out, nil
}

// deleteDevice removes id when etag matches, closing its connection and
// forgetting its MQTT session.
func (h *Hub) deleteDevice(w http.ResponseWriter, r *http.Request, id string) {
	if !h.meter(w, opRegistry, 1) {
		return
	}
	if rerr := h.removeDevice(id, r.Header.Get("If-Match")); rerr != nil {
		h.writeError(w, rerr.status, rerr.code, rerr.msg, nil)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Hub) removeDevice(id, etag string) *regError {
	d := h.reg.get(id)
	if d == nil {
		return regErrorf(http.StatusNotFound, iothub.CodeDeviceNotFound, "Device %q is not registered with this hub.", id)
	}
	d.mu.Lock()
	if !ifMatches(etag, d.deviceETag()) {
		d.mu.Unlock()
		return regErrorf(http.StatusPreconditionFailed, iothub.CodePreconditionFailed, "The etag does not match device %q's current etag.", id)
	}
	d.deleted = true
	d.mu.Unlock()
	h.reg.remove(id)
	h.changed()
	h.forgetSession(d)
	return nil
}

func (h *Hub) getDevice(w http.ResponseWriter, r *http.Request, id string) {
	if !h.meter(w, opRegistry, 1) {
		return
	}
	d := h.reg.get(id)
	if d == nil {
		h.deviceNotFound(w, id)
		return
	}
	d.mu.Lock()
	out := d.identity()
	d.mu.Unlock()
	h.writeJSON(w, http.StatusOK, out)
}

func (h *Hub) putDevice(w http.ResponseWriter, r *http.Request, id string) {
	if !h.meter(w, opRegistry, 1) {
		return
	}
	raw, ok := h.readBody(w, r, maxRequestBody)
	if !ok {
		return
	}
	var body deviceBody
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			h.badJSON(w, "device", err)
			return
		}
	}
	if body.DeviceID != "" && body.DeviceID != id {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid,
			fmt.Sprintf("The body's deviceId %q does not match the path's %q.", body.DeviceID, id), nil)
		return
	}
	var (
		out  iothub.Device
		rerr *regError
	)
	if etag := r.Header.Get("If-Match"); etag != "" {
		out, rerr = h.updateDevice(id, etag, &body)
	} else {
		out, rerr = h.createDevice(id, &body)
	}
	if rerr != nil {
		h.writeError(w, rerr.status, rerr.code, rerr.msg, nil)
		return
	}
	h.writeJSON(w, http.StatusOK, out)
}

// maxListDevices is the most GET /devices returns, as on the hub.
const maxListDevices = 1000

func (h *Hub) listDevices(w http.ResponseWriter, r *http.Request, _ string) {
	if !h.meter(w, opRegistry, 1) {
		return
	}
	top := maxListDevices
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListDevices {
			h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid,
				fmt.Sprintf("top must be an integer from 1 to %d.", maxListDevices), nil)
			return
		}
		top = n
	}
	devs := h.reg.ordered()
	out := make([]iothub.Device, 0, min(top, len(devs)))
	for _, d := range devs[:min(top, len(devs))] {
		d.mu.Lock()
		out = append(out, d.identity())
		d.mu.Unlock()
	}
	h.writeJSON(w, http.StatusOK, out)
}

// bulkResult is the answer to POST /devices.
type bulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []bulkError `json:"errors"`
	Warnings     []bulkError `json:"warnings"`
}

type bulkError struct {
	DeviceID    string `json:"deviceId"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// maxBulkDevices is the most one bulk request may carry.
const maxBulkDevices = 100

// bulkDevices applies POST /devices: create, update, createOrUpdate and
// delete items (importMode), each counted against one registry operation
// for the whole request.
func (h *Hub) bulkDevices(w http.ResponseWriter, r *http.Request, _ string) {
	if !h.meter(w, opRegistry, 1) {
		return
	}
	raw, ok := h.readBody(w, r, maxRequestBody)
	if !ok {
		return
	}
	var items []deviceBody
	if err := json.Unmarshal(raw, &items); err != nil {
		h.badJSON(w, "bulk registry request", err)
		return
	}
	if len(items) == 0 || len(items) > maxBulkDevices {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid,
			fmt.Sprintf("A bulk request carries 1 to %d devices; this one has %d.", maxBulkDevices, len(items)), nil)
		return
	}
	res := bulkResult{Errors: []bulkError{}, Warnings: []bulkError{}}
	for i := range items {
		it := &items[i]
		id := it.ID
		if id == "" {
			id = it.DeviceID
		}
		var rerr *regError
		switch strings.ToLower(it.ImportMode) {
		case "create", "":
			_, rerr = h.createDevice(id, it)
		case "update", "updateifmatchetag":
			_, rerr = h.updateDevice(id, bulkETag(it), it)
		case "createorupdate", "createorupdateifmatchetag":
			if h.reg.get(id) == nil {
				_, rerr = h.createDevice(id, it)
			} else {
				_, rerr = h.updateDevice(id, bulkETag(it), it)
			}
		case "delete", "deleteifmatchetag":
			rerr = h.removeDevice(id, bulkETag(it))
		default:
			rerr = regErrorf(http.StatusBadRequest, iothub.CodeArgumentInvalid, "importMode %q is not supported", it.ImportMode)
		}
		if rerr != nil {
			name := iothub.CodeName(rerr.code)
			if name == "" {
				name = strconv.Itoa(rerr.code)
			}
			res.Errors = append(res.Errors, bulkError{DeviceID: id, ErrorCode: name, ErrorStatus: rerr.msg})
		}
	}
	res.IsSuccessful = len(res.Errors) == 0
	status := http.StatusOK
	if !res.IsSuccessful {
		status = http.StatusBadRequest
	}
	h.writeJSON(w, status, res)
}

// bulkETag is the etag a bulk item must match: only the *IfMatchETag modes
// check it.
func bulkETag(it *deviceBody) string {
	if strings.HasSuffix(strings.ToLower(it.ImportMode), "ifmatchetag") && it.ETag != "" {
		return it.ETag
	}
	return "*"
}

func (h *Hub) registryStats(w http.ResponseWriter, r *http.Request, _ string) {
	if !h.meter(w, opRegistry, 1) {
		return
	}
	var total, enabled int
	for _, d := range h.reg.ordered() {
		d.mu.Lock()
		if d.status == "enabled" {
			enabled++
		}
		d.mu.Unlock()
		total++
	}
	h.writeJSON(w, http.StatusOK, map[string]int{
		"totalDeviceCount":    total,
		"enabledDeviceCount":  enabled,
		"disabledDeviceCount": total - enabled,
	})
}

func (h *Hub) serviceStats(w http.ResponseWriter, r *http.Request, _ string) {
	h.writeJSON(w, http.StatusOK, map[string]int64{"connectedDeviceCount": h.stats.connected.Load()})
}
