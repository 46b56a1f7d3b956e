package simulator

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// Window answer statuses, reported as maintenanceWindow.status.
const (
	WindowAccepted = "accepted"
	WindowRejected = "rejected"
)

// Members the device adds to the policy it reports back.
var windowAckKeys = []string{"status", "reason", "ackVersion", "ackTime"}

// onDesired follows desired-property notifications; only maintenanceWindow
// concerns a simulated device.
func (d *simDevice) onDesired(patch map[string]any, version int64) {
	v, ok := patch["maintenanceWindow"]
	if !ok {
		return
	}
	d.sim.spawn(func(ctx context.Context) { d.windowChanged(ctx, v, version, false) })
}

// reconcileWindow compares the twin's desired policy with what the device
// last reported and answers, on its own goroutine, a policy it has not
// answered yet (one set while it was offline, or before the simulation
// started).
func (d *simDevice) reconcileWindow(desired, reported map[string]any) {
	d.windowMu.Lock()
	d.window, _ = reported["maintenanceWindow"].(map[string]any)
	policy, has := desired["maintenanceWindow"]
	version := iothub.SectionVersion(desired)
	answered := (!has && d.window == nil) || (has && d.window != nil && samePolicy(d.window, policy))
	if answered {
		d.windowDesired = policy
		d.windowVersion = max(d.windowVersion, version)
	}
	d.windowMu.Unlock()
	if !answered {
		d.sim.spawn(func(ctx context.Context) { d.windowChanged(ctx, policy, version, true) })
	}
}

// windowChanged answers the policy that a desired change (a merge patch
// unless whole) leaves in place: the policy echoed with status "accepted",
// or "rejected" with a reason, plus the desired $version answered and the
// time; a deleted policy deletes the reported one.
func (d *simDevice) windowChanged(ctx context.Context, v any, version int64, whole bool) {
	d.windowMu.Lock()
	defer d.windowMu.Unlock()
	if version != 0 && version <= d.windowVersion {
		return
	}
	d.windowVersion = version
	policy := v
	if !whole {
		policy = applyMergePatch(d.windowDesired, v)
	}
	d.windowDesired = policy
	if !sleep(ctx, d.draw(d.behaviour().Window.Delay)) {
		return
	}
	rep := d.windowAnswer(policy, version)
	if rep == nil && d.window == nil {
		return
	}
	d.report(ctx, map[string]any{"maintenanceWindow": replacePatch(d.window, rep)})
	d.window = rep
}

func (d *simDevice) windowAnswer(policy any, version int64) map[string]any {
	if policy == nil {
		return nil
	}
	rep := map[string]any{}
	var reason string
	if m, ok := policy.(map[string]any); ok {
		maps.Copy(rep, m)
		reason = checkWindow(m)
	} else {
		reason = `maintenanceWindow must be an object such as {"start":"01:00","duration":"3h"}`
	}
	if reason == "" && !d.spec.accepts {
		reason = "the device's own policy does not allow maintenance windows"
	}
	rep["status"] = WindowAccepted
	if reason != "" {
		rep["status"] = WindowRejected
		rep["reason"] = reason
		d.sim.stats.windowsRejected.Add(1)
	} else {
		d.sim.stats.windowsAccepted.Add(1)
	}
	rep["ackVersion"] = version
	rep["ackTime"] = d.timestamp()
	return rep
}

// checkWindow vets the members a device understands: start as "HH:MM" and
// duration as a Go duration of at most a day. Other members pass through.
func checkWindow(m map[string]any) string {
	if v, ok := m["start"]; ok {
		s, _ := v.(string)
		if _, err := time.Parse("15:04", s); err != nil {
			return fmt.Sprintf("start %v is not a time of day such as \"01:00\"", v)
		}
	}
	if v, ok := m["duration"]; ok {
		s, _ := v.(string)
		dur, err := time.ParseDuration(s)
		if err != nil || dur <= 0 || dur > 24*time.Hour {
			return fmt.Sprintf("duration %v is not a duration from 1s to 24h such as \"3h\"", v)
		}
	}
	return ""
}

// samePolicy reports whether rep (a reported answer) echoes policy.
func samePolicy(rep map[string]any, policy any) bool {
	m, ok := policy.(map[string]any)
	if !ok || rep["status"] == nil {
		return false
	}
	echo := maps.Clone(rep)
	for _, k := range windowAckKeys {
		delete(echo, k)
	}
	return reflect.DeepEqual(echo, m)
}

// applyMergePatch applies a JSON merge patch (RFC 7386) to target.
func applyMergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	out := map[string]any{}
	if tm, ok := target.(map[string]any); ok {
		maps.Copy(out, tm)
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = applyMergePatch(out[k], v)
	}
	return out
}
