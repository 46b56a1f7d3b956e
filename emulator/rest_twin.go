package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hubflow/hubflow/iothub"
)

func (h *Hub) getTwin(w http.ResponseWriter, r *http.Request, id string) {
	if !h.meter(w, opTwinRead, 1) {
		return
	}
	h.stats.twinReads.Add(1)
	d := h.reg.get(id)
	if d == nil {
		h.deviceNotFound(w, id)
		return
	}
	d.mu.Lock()
	doc := d.twinDoc()
	etag := d.twin.etag()
	d.mu.Unlock()
	w.Header().Set("ETag", `"`+etag+`"`)
	h.writeJSON(w, http.StatusOK, doc)
}

func (h *Hub) patchTwin(w http.ResponseWriter, r *http.Request, id string) {
	h.updateTwin(w, r, id, false)
}

func (h *Hub) replaceTwin(w http.ResponseWriter, r *http.Request, id string) {
	h.updateTwin(w, r, id, true)
}

// twinUpdate is the part of a service twin request the hub acts on.
type twinUpdate struct {
	tags, desired map[string]any
}

// parseTwinUpdate extracts tags and desired properties from a service
// request body. Top-level member names match case-insensitively; property
// names inside sections are case-sensitive, as twin keys are. A reported
// section with content is refused: only devices write reported properties.
// On replace, the $metadata and $version a client copied from GET are
// ignored.
func parseTwinUpdate(raw []byte, replace bool) (twinUpdate, error) {
	var u twinUpdate
	v, err := decodeJSON(raw)
	if err != nil {
		return u, fmt.Errorf("%w: %v", errBodyNotJSON, err)
	}
	body, ok := v.(map[string]any)
	if !ok {
		return u, invalidf("the body must be a JSON object with tags and/or properties.desired")
	}
	obj := func(name string, v any) (map[string]any, error) {
		switch v := v.(type) {
		case nil:
			return nil, nil
		case map[string]any:
			return v, nil
		}
		return nil, invalidf("%s must be a JSON object", name)
	}
	if t, ok := member(body, "tags"); ok {
		if u.tags, err = obj("tags", t); err != nil {
			return u, err
		}
	}
	if p, ok := member(body, "properties"); ok {
		props, err := obj("properties", p)
		if err != nil {
			return u, err
		}
		if d, ok := member(props, "desired"); ok {
			if u.desired, err = obj("properties.desired", d); err != nil {
				return u, err
			}
		}
		if rep, ok := member(props, "reported"); ok {
			repm, err := obj("properties.reported", rep)
			if err != nil {
				return u, err
			}
			for k := range repm {
				if k != "$metadata" && k != "$version" {
					return u, invalidf("properties.reported cannot be written by the service; only the device reports them")
				}
			}
		}
	}
	if replace && u.desired != nil {
		delete(u.desired, "$metadata")
		delete(u.desired, "$version")
	}
	if u.tags != nil {
		if err := normalizePatch(u.tags, 1); err != nil {
			return u, err
		}
	}
	if u.desired != nil {
		if err := normalizePatch(u.desired, 1); err != nil {
			return u, err
		}
	}
	return u, nil
}

var errBodyNotJSON = errors.New("body is not JSON")

func (h *Hub) updateTwin(w http.ResponseWriter, r *http.Request, id string, replace bool) {
	if !h.meter(w, opTwinUpdate, 1) {
		return
	}
	h.stats.twinUpdates.Add(1)
	raw, ok := h.readBody(w, r, maxRequestBody)
	if !ok {
		return
	}
	u, err := parseTwinUpdate(raw, replace)
	if errors.Is(err, errBodyNotJSON) {
		h.badJSON(w, "twin", errors.Unwrap(err))
		return
	}
	if err != nil {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, err.Error(), nil)
		return
	}
	d := h.reg.get(id)
	if d == nil {
		h.deviceNotFound(w, id)
		return
	}
	d.mu.Lock()
	if !ifMatches(r.Header.Get("If-Match"), d.twin.etag()) {
		d.mu.Unlock()
		h.writeError(w, http.StatusPreconditionFailed, iothub.CodePreconditionFailed,
			fmt.Sprintf("The etag does not match the current etag of device %q's twin.", id), nil)
		return
	}
	ch, err := d.twin.patchService(u.tags, u.desired, replace, h.now())
	if err != nil {
		d.mu.Unlock()
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, err.Error(), nil)
		return
	}
	if ch.tags || ch.desired {
		d.invalidate(true)
		h.changed()
	}
	doc := d.twinDoc()
	etag := d.twin.etag()
	h.notifyDesiredLocked(d, ch.desiredPatch)
	w.Header().Set("ETag", `"`+etag+`"`)
	h.writeJSON(w, http.StatusOK, doc)
}

// notifyDesiredLocked sends a desired-properties notification to d's
// connected, subscribed client. It is called with d.mu held and releases
// it; sendMu keeps notifications in version order across the unlocked
// network write.
func (h *Hub) notifyDesiredLocked(d *device, patch map[string]any) {
	if patch == nil || d.client == nil || !d.established || !hasSub(d.client, iothub.TopicDesiredFilter) {
		d.mu.Unlock()
		return
	}
	cl := d.client
	version := d.twin.desVer
	d.sendMu.Lock()
	d.mu.Unlock()
	defer d.sendMu.Unlock()
	body, err := json.Marshal(patch)
	if err != nil {
		return
	}
	if err := writePublish(cl, iothub.DesiredPatchTopic(version), body); err != nil {
		h.log.Debug("desired notification not delivered", "device", d.id, "error", err)
	}
}
