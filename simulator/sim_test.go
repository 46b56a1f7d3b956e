package simulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/simulator"
)

// fleetEnv is an emulator with a simulated fleet connected to it.
type fleetEnv struct {
	hub *emulator.Hub
	svc *service.Client
	sim *simulator.Sim
}

func startHub(t testing.TB) *emulator.Hub {
	t.Helper()
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

func serviceClient(t testing.TB, hub *emulator.Hub) *service.Client {
	t.Helper()
	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: hub.CAPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc
}

func simConfig(t testing.TB, hub *emulator.Hub) simulator.Config {
	t.Helper()
	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	return simulator.Config{
		Hub:                    cs,
		DeviceConnectionString: hub.DeviceConnectionString,
		RootCAs:                hub.CAPool(),
		Seed:                   1,
	}
}

// startFleet starts an emulator and the fleet src against it; edit may
// adjust the configuration first.
func startFleet(t testing.TB, src string, edit func(*simulator.Config)) *fleetEnv {
	t.Helper()
	hub := startHub(t)
	return startFleetOn(t, hub, src, edit)
}

func startFleetOn(t testing.TB, hub *emulator.Hub, src string, edit func(*simulator.Config)) *fleetEnv {
	t.Helper()
	cfg := simConfig(t, hub)
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim, err := simulator.Start(ctx, mustLoad(t, src), cfg)
	if err != nil {
		t.Fatalf("start fleet: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return &fleetEnv{hub: hub, svc: serviceClient(t, hub), sim: sim}
}

func (e *fleetEnv) invoke(t testing.TB, id, method, payload string) *iothub.MethodResponse {
	t.Helper()
	resp, err := e.svc.InvokeMethod(context.Background(), id, service.MethodCall{
		Name: method, Payload: json.RawMessage(payload), ResponseTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("invoke %s on %s: %v", method, id, err)
	}
	return resp
}

func (e *fleetEnv) twin(t testing.TB, id string) *iothub.Twin {
	t.Helper()
	tw, err := e.svc.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatalf("get twin of %s: %v", id, err)
	}
	return tw
}

// waitReported polls id's reported properties until cond holds.
func (e *fleetEnv) waitReported(t testing.TB, id, what string, cond func(r map[string]any) bool) map[string]any {
	t.Helper()
	var last map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		last = e.twin(t, id).Properties.Reported
		if cond(last) {
			return last
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("device %s: %s did not happen; reported properties: %v", id, what, last)
	return nil
}

// reportedLog decodes the reported patches the hub received from id.
func reportedLog(t testing.TB, hub *emulator.Hub, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range hub.ReportedLog(id) {
		var m map[string]any
		if err := json.Unmarshal(p.Patch, &m); err != nil {
			t.Fatalf("reported patch of %s: %v", id, err)
		}
		out = append(out, m)
	}
	return out
}

// stepClock returns a clock that moves one second forward on every read,
// so each timestamp a device reports is later than the one before.
func stepClock() func() time.Time {
	base := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	var n atomic.Int64
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

func parseStamp(t testing.TB, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("timestamp %v: %v", v, err)
	}
	return ts
}

func TestStart_RegistersMissingDevices(t *testing.T) {
	const src = `
group "press" {
  count = 3
  id    = "plant7-press-%02d"
  tags = {
    site  = "plant-7"
    model = one_of(["PX-100", "PX-200"])
    slot  = format("S%d", index)
  }
  reported = {
    fwVersion = "2.0.0"
  }
}
`
	for _, path := range []string{"emulator connection strings", "keys from the registry"} {
		t.Run(path, func(t *testing.T) {
			hub := startHub(t)
			existing, err := hub.CreateDevice("plant7-press-02")
			if err != nil {
				t.Fatal(err)
			}
			e := startFleetOn(t, hub, src, func(c *simulator.Config) {
				if path == "keys from the registry" {
					c.DeviceConnectionString = nil
					c.GatewayHostName = hub.MQTTAddr()
				}
			})
			st := e.sim.Stats()
			if st.Devices != 3 || st.Registered != 2 || st.Connected != 3 {
				t.Errorf("got %d devices, %d registered, %d connected; want 3, 2, 3", st.Devices, st.Registered, st.Connected)
			}
			if got, want := e.sim.Devices(), []string{"plant7-press-01", "plant7-press-02", "plant7-press-03"}; !slices.Equal(got, want) {
				t.Errorf("got devices %v, want %v", got, want)
			}
			dev, err := e.svc.GetDevice(context.Background(), "plant7-press-02")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := dev.Authentication.SymmetricKey.PrimaryKey, existing.Authentication.SymmetricKey.PrimaryKey; got != want {
				t.Errorf("the existing device's key changed")
			}
			for i, id := range e.sim.Devices() {
				tw := e.twin(t, id)
				if tw.Tags["site"] != "plant-7" || tw.Tags["slot"] != fmt.Sprintf("S%d", i+1) {
					t.Errorf("%s: got tags %v, want site plant-7 and slot S%d", id, tw.Tags, i+1)
				}
				if m := tw.Tags["model"]; m != "PX-100" && m != "PX-200" {
					t.Errorf("%s: got model %v, want one of the list", id, m)
				}
				r := tw.Properties.Reported
				if r["fwVersion"] != "2.0.0" || r["firmwareStatus"] != simulator.StatusStandBy || r["logTime"] == nil {
					t.Errorf("%s: got reported %v, want fwVersion 2.0.0, firmwareStatus standBy and logTime", id, r)
				}
				if tw.ConnectionState != "Connected" {
					t.Errorf("%s: got connection state %q, want Connected", id, tw.ConnectionState)
				}
			}
		})
	}
}

func TestStart_RefusedCredentials(t *testing.T) {
	hub := startHub(t)
	cfg := simConfig(t, hub)
	cfg.Hub.SharedAccessKey = "d3Jvbmcga2V5IGZvciB0aGUgaHVi"
	_, err := simulator.Start(context.Background(), mustLoad(t, "group \"a\" {\n  count = 2\n}\n"), cfg)
	if iothub.KindOf(err) != iothub.KindUnauthorized {
		t.Fatalf("got %v, want an unauthorized hub error", err)
	}
	if strings.Contains(err.Error(), cfg.Hub.SharedAccessKey) {
		t.Errorf("the error shows the key: %v", err)
	}
}

func TestStart_RetriesWhileHubFails(t *testing.T) {
	hub := startHub(t)
	hub.Faults().FailREST(503, 700*time.Millisecond)
	e := startFleetOn(t, hub, "group \"d\" {\n  count = 2\n  tags = { site = \"plant-7\" }\n}\n", nil)
	if st := e.sim.Stats(); st.Registered != 2 || st.Connected != 2 {
		t.Errorf("got %d registered and %d connected, want 2 and 2", st.Registered, st.Connected)
	}
}

func TestSim_Reboot(t *testing.T) {
	clock := stepClock()
	e := startFleet(t, `
group "d" {
  count = 1
  reboot {
    duration = "300ms"
  }
}
`, func(c *simulator.Config) { c.Now = clock })
	id := e.sim.Devices()[0]
	resp := e.invoke(t, id, simulator.MethodReboot, "null")
	if resp.Status != 200 || string(resp.Payload) != `{"Response":"Reboot started"}` {
		t.Fatalf("got %d %s, want 200 {\"Response\":\"Reboot started\"}", resp.Status, resp.Payload)
	}
	r := e.waitReported(t, id, "rebootTime reported", func(r map[string]any) bool { return r["rebootTime"] != nil })
	logTime := parseStamp(t, r["logTime"])
	if rebootTime := parseStamp(t, r["rebootTime"]); !rebootTime.After(logTime) {
		t.Errorf("got rebootTime %v, want it after the start-up logTime %v", rebootTime, logTime)
	}
	// The device went away and came back: the hub saw a fresh connection.
	if st := e.sim.Stats(); st.Reboots != 1 || st.Connected != 1 {
		t.Errorf("got %d reboots, %d connected; want 1 and 1", st.Reboots, st.Connected)
	}
	if got := e.invoke(t, id, simulator.MethodReboot, "null").Status; got != 200 {
		t.Errorf("second reboot: got status %d, want 200", got)
	}
}

func TestSim_RebootTakesDeviceOffline(t *testing.T) {
	e := startFleet(t, `
group "d" {
  count = 1
  reboot {
    duration = "2s"
  }
}
`, nil)
	id := e.sim.Devices()[0]
	e.invoke(t, id, simulator.MethodReboot, "null")
	deadline := time.Now().Add(5 * time.Second)
	for e.sim.Stats().Connected != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the device never went offline during its reboot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err := e.svc.InvokeMethod(context.Background(), id, service.MethodCall{Name: simulator.MethodReboot, ResponseTimeout: 5 * time.Second})
	if iothub.KindOf(err) != iothub.KindDeviceNotOnline {
		t.Errorf("call during the reboot: got %v, want device not online", err)
	}
}

func TestSim_FirmwareUpdate(t *testing.T) {
	clock := stepClock()
	e := startFleet(t, `
group "d" {
  count = 1
  reported = { fwVersion = "2.0.0" }
  firmware {
    downloading = "50ms"
    applying    = "50ms"
  }
}
`, func(c *simulator.Config) { c.Now = clock })
	id := e.sim.Devices()[0]
	const target = "SELECT * FROM devices WHERE properties.reported.fwVersion != '2.1.0'"
	if n := countQuery(t, e.svc, target); n != 1 {
		t.Fatalf("before the update the target query matched %d devices, want 1", n)
	}
	resp := e.invoke(t, id, simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://fw.example.com/edge-2.1.0.bin"}`)
	if resp.Status != 200 || string(resp.Payload) != `{"Response":"Firmware update started"}` {
		t.Fatalf("got %d %s, want 200 {\"Response\":\"Firmware update started\"}", resp.Status, resp.Payload)
	}
	r := e.waitReported(t, id, "firmware completed", func(r map[string]any) bool { return r["firmwareStatus"] == simulator.StatusCompleted })
	if r["fwVersion"] != "2.1.0" || r["fwPackageUri"] != "https://fw.example.com/edge-2.1.0.bin" {
		t.Errorf("got fwVersion %v from %v, want 2.1.0", r["fwVersion"], r["fwPackageUri"])
	}
	stamps := []string{"logTime", "downloadComplete", "startedApplyingImage", "lastFirmwareUpdate"}
	for i := 1; i < len(stamps); i++ {
		a, b := parseStamp(t, r[stamps[i-1]]), parseStamp(t, r[stamps[i]])
		if !b.After(a) {
			t.Errorf("got %s %v not after %s %v", stamps[i], b, stamps[i-1], a)
		}
	}

	// The hub saw the stages in order, each in its own patch.
	var statuses []any
	for _, p := range reportedLog(t, e.hub, id) {
		if s, ok := p["firmwareStatus"]; ok {
			statuses = append(statuses, s)
		}
		if _, ok := p["downloadComplete"]; ok && p["downloadComplete"] != nil {
			statuses = append(statuses, "downloadComplete")
		}
	}
	want := []any{"standBy", "downloading", "downloadComplete", "applying", "completed"}
	if !slices.Equal(statuses, want) {
		t.Errorf("got stages %v, want %v", statuses, want)
	}
	if n := countQuery(t, e.svc, target); n != 0 {
		t.Errorf("after the update the target query matched %d devices, want 0", n)
	}
	if st := e.sim.Stats(); st.FirmwareStarted != 1 || st.FirmwareCompleted != 1 || st.FirmwareFailed != 0 {
		t.Errorf("got stats %+v, want one update started and completed", st)
	}
}

func countQuery(t testing.TB, svc *service.Client, q string) int {
	t.Helper()
	n := 0
	for _, err := range svc.QueryTwins(context.Background(), q, 0) {
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		n++
	}
	return n
}

func TestSim_FirmwareFailure(t *testing.T) {
	cases := []struct {
		name, block, stage string
		downloaded         bool
	}{
		{"download", "fail_downloading = 1", simulator.StatusDownloading, false},
		{"apply", "fail_applying = 1.0", simulator.StatusApplying, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFleet(t, fmt.Sprintf(`
group "d" {
  count = 1
  reported = { fwVersion = "2.0.0" }
  firmware {
    downloading = "20ms"
    applying    = "20ms"
    %s
  }
}
`, c.block), nil)
			id := e.sim.Devices()[0]
			e.invoke(t, id, simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://fw.example.com/edge-2.1.0.bin"}`)
			r := e.waitReported(t, id, "firmware failed", func(r map[string]any) bool { return r["firmwareStatus"] == simulator.StatusFailed })
			detail, _ := r["firmwareUpdateError"].(map[string]any)
			if detail["stage"] != c.stage || detail["message"] == "" || detail["time"] == nil {
				t.Errorf("got firmwareUpdateError %v, want stage %s with a message and a time", r["firmwareUpdateError"], c.stage)
			}
			if r["fwVersion"] != "2.0.0" {
				t.Errorf("got fwVersion %v after a failed update, want 2.0.0", r["fwVersion"])
			}
			if got := r["downloadComplete"] != nil; got != c.downloaded {
				t.Errorf("got downloadComplete %v, want present %v", r["downloadComplete"], c.downloaded)
			}
			if st := e.sim.Stats(); st.FirmwareFailed != 1 || st.FirmwareCompleted != 0 {
				t.Errorf("got %d failed, %d completed; want 1 and 0", st.FirmwareFailed, st.FirmwareCompleted)
			}
			// A failed update does not keep the device busy.
			if got := e.invoke(t, id, simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://x/2.2.0.bin"}`).Status; got != 200 {
				t.Errorf("update after a failure: got status %d, want 200", got)
			}
		})
	}
}

func TestSim_FirmwareAnswers(t *testing.T) {
	e := startFleet(t, `
group "d" {
  count = 1
  firmware {
    downloading = "1m"
  }
}
`, nil)
	id := e.sim.Devices()[0]
	cases := []struct {
		name, method, payload string
		status                int
		body                  string
	}{
		{"missing URI", simulator.MethodFirmwareUpdate, `{}`, 400, "fwPackageUri"},
		{"not an object", simulator.MethodFirmwareUpdate, `"https://x/1.0.bin"`, 400, "fwPackageUri"},
		{"first update", simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://x/3.0.0.bin"}`, 200, "Firmware update started"},
		{"second update while busy", simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://x/3.0.1.bin"}`, 409, "already in progress"},
		{"unknown method", "selfDestruct", `null`, 404, "Unknown method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.invoke(t, id, c.method, c.payload)
			if resp.Status != c.status || !strings.Contains(string(resp.Payload), c.body) {
				t.Errorf("got %d %s, want %d with %q", resp.Status, resp.Payload, c.status, c.body)
			}
		})
	}
}

func TestSim_Offline(t *testing.T) {
	e := startFleet(t, `
group "d" {
  count = 4
  reported = { fwVersion = "2.0.0" }
  offline {
    fraction = 0.5
  }
}
`, nil)
	st := e.sim.Stats()
	if st.Offline != 2 || st.Connected != 2 {
		t.Fatalf("got %d offline and %d connected, want 2 and 2", st.Offline, st.Connected)
	}
	offline := 0
	for _, id := range e.sim.Devices() {
		tw := e.twin(t, id)
		if tw.Properties.Reported["fwVersion"] != "2.0.0" {
			t.Errorf("%s: got reported %v, want the initial fwVersion", id, tw.Properties.Reported)
		}
		_, err := e.svc.InvokeMethod(context.Background(), id, service.MethodCall{Name: simulator.MethodReboot, ResponseTimeout: 5 * time.Second})
		switch {
		case iothub.KindOf(err) == iothub.KindDeviceNotOnline:
			offline++
		case err != nil:
			t.Errorf("%s: %v", id, err)
		}
	}
	if offline != 2 {
		t.Errorf("got %d devices answering 404 device not online, want 2", offline)
	}
}

func TestSim_SlowResponder(t *testing.T) {
	e := startFleet(t, `
group "slow" {
  count = 1
  slow {
    delay = "400ms"
  }
}
`, nil)
	id := e.sim.Devices()[0]
	began := time.Now()
	resp := e.invoke(t, id, simulator.MethodReboot, "null")
	if took := time.Since(began); took < 400*time.Millisecond {
		t.Errorf("got an answer after %s, want at least 400ms", took)
	}
	if resp.Status != 200 {
		t.Errorf("got status %d, want 200", resp.Status)
	}
}

func TestSim_MaintenanceWindow(t *testing.T) {
	cases := []struct {
		name, accept string
		policy       map[string]any
		status       string
		reason       string
	}{
		{"accepted", "1", map[string]any{"start": "01:00", "duration": "3h"}, simulator.WindowAccepted, ""},
		{"device refuses", "0", map[string]any{"start": "01:00", "duration": "3h"}, simulator.WindowRejected, "does not allow"},
		{"bad start", "1", map[string]any{"start": "25:00", "duration": "3h"}, simulator.WindowRejected, "time of day"},
		{"bad duration", "1", map[string]any{"start": "01:00", "duration": "forever"}, simulator.WindowRejected, "duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startFleet(t, fmt.Sprintf("group \"d\" {\n  count = 1\n  maintenance_window {\n    accept = %s\n  }\n}\n", c.accept), nil)
			id := e.sim.Devices()[0]
			tw, err := e.svc.UpdateTwin(context.Background(), id, iothub.TwinPatch{
				Properties: &iothub.TwinPatchProperties{Desired: map[string]any{"maintenanceWindow": c.policy}},
			}, "")
			if err != nil {
				t.Fatal(err)
			}
			r := e.waitReported(t, id, "window answered", func(r map[string]any) bool { return r["maintenanceWindow"] != nil })
			mw := r["maintenanceWindow"].(map[string]any)
			if mw["status"] != c.status || mw["start"] != c.policy["start"] || mw["duration"] != c.policy["duration"] {
				t.Errorf("got %v, want status %s echoing the policy", mw, c.status)
			}
			if want := float64(iothub.SectionVersion(tw.Properties.Desired)); mw["ackVersion"] != want {
				t.Errorf("got ackVersion %v, want the desired $version %v", mw["ackVersion"], want)
			}
			reason, _ := mw["reason"].(string)
			if (c.reason == "") != (reason == "") || !strings.Contains(reason, c.reason) {
				t.Errorf("got reason %q, want one containing %q", reason, c.reason)
			}
		})
	}
}

func TestSim_MaintenanceWindowChanges(t *testing.T) {
	e := startFleet(t, "group \"d\" {\n  count = 1\n}\n", nil)
	id := e.sim.Devices()[0]
	patch := func(mw any) {
		t.Helper()
		_, err := e.svc.UpdateTwin(context.Background(), id, iothub.TwinPatch{
			Properties: &iothub.TwinPatchProperties{Desired: map[string]any{"maintenanceWindow": mw}},
		}, "")
		if err != nil {
			t.Fatal(err)
		}
	}
	patch(map[string]any{"start": "01:00", "duration": "3h", "days": "weekdays"})
	e.waitReported(t, id, "first policy accepted", func(r map[string]any) bool { return r["maintenanceWindow"] != nil })

	// A partial desired patch: the device answers the merged policy and the
	// member that went away leaves the reported echo too.
	patch(map[string]any{"start": "02:00", "days": nil})
	r := e.waitReported(t, id, "second policy accepted", func(r map[string]any) bool {
		mw, _ := r["maintenanceWindow"].(map[string]any)
		return mw["start"] == "02:00"
	})
	mw := r["maintenanceWindow"].(map[string]any)
	if _, ok := mw["days"]; ok || mw["duration"] != "3h" || mw["status"] != simulator.WindowAccepted {
		t.Errorf("got %v, want start 02:00, duration 3h, no days, accepted", mw)
	}

	patch(nil)
	e.waitReported(t, id, "policy removed", func(r map[string]any) bool { return r["maintenanceWindow"] == nil })
}

func TestStart_AnswersPolicySetBeforehand(t *testing.T) {
	hub := startHub(t)
	if _, err := hub.CreateDevice("d-0001"); err != nil {
		t.Fatal(err)
	}
	svc := serviceClient(t, hub)
	_, err := svc.UpdateTwin(context.Background(), "d-0001", iothub.TwinPatch{
		Properties: &iothub.TwinPatchProperties{Desired: map[string]any{"maintenanceWindow": map[string]any{"start": "03:30", "duration": "1h"}}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	e := startFleetOn(t, hub, "group \"d\" {\n  count = 1\n}\n", nil)
	r := e.waitReported(t, "d-0001", "policy accepted", func(r map[string]any) bool { return r["maintenanceWindow"] != nil })
	if mw := r["maintenanceWindow"].(map[string]any); mw["status"] != simulator.WindowAccepted || mw["start"] != "03:30" {
		t.Errorf("got %v, want the policy accepted", mw)
	}
}

func TestSim_Flaky(t *testing.T) {
	e := startFleet(t, `
group "d" {
  count = 2
  flaky {
    disconnects_per_hour = 36000
    downtime             = "20ms..60ms"
  }
}
`, nil)
	deadline := time.Now().Add(10 * time.Second)
	for e.sim.Stats().Disconnects < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d disconnects, want at least 3", e.sim.Stats().Disconnects)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A flaky device comes back: a call that waits for it to connect gets
	// its answer.
	resp, err := e.svc.InvokeMethod(context.Background(), e.sim.Devices()[0], service.MethodCall{
		Name: "selfTest", ResponseTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second,
	})
	if err != nil || resp.Status != 404 {
		t.Errorf("got %v %v, want the device's 404 answer", resp, err)
	}
}

func TestSim_ReportsSurviveDroppedConnection(t *testing.T) {
	e := startFleet(t, `
group "d" {
  count = 1
  firmware {
    downloading = "300ms"
    applying    = "300ms"
  }
}
`, nil)
	id := e.sim.Devices()[0]
	e.invoke(t, id, simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://x/fw-4.0.0.bin"}`)
	e.hub.Faults().DisconnectDevice(id)
	r := e.waitReported(t, id, "firmware completed", func(r map[string]any) bool { return r["firmwareStatus"] == simulator.StatusCompleted })
	if r["fwVersion"] != "4.0.0" || r["downloadComplete"] == nil || r["startedApplyingImage"] == nil {
		t.Errorf("got %v, want every stage reported", r)
	}
}

func TestSim_OnReport(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]map[string]any{}
	e := startFleet(t, "group \"d\" {\n  count = 2\n  reported = { fwVersion = \"2.0.0\" }\n}\n", func(c *simulator.Config) {
		c.OnReport = func(id string, patch map[string]any) {
			mu.Lock()
			defer mu.Unlock()
			got[id] = append(got[id], patch)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range e.sim.Devices() {
		if len(got[id]) != 1 || got[id][0]["fwVersion"] != "2.0.0" {
			t.Errorf("%s: got reports %v, want the initial one", id, got[id])
		}
	}
}

func TestSim_Close(t *testing.T) {
	e := startFleet(t, "group \"d\" {\n  count = 3\n}\n", nil)
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := e.sim.Stats(); st.Connected != 0 {
		t.Errorf("got %d connected after Close, want 0", st.Connected)
	}
}

// TestSim_ReportsSurviveThrottling checks that reported patches the hub
// answers with 429 are sent again, as a device SDK would, rather than lost.
func TestSim_ReportsSurviveThrottling(t *testing.T) {
	e := startFleet(t, `
group "d" {
  count = 1
  firmware {
    downloading = "100ms"
    applying    = "100ms"
  }
}
`, nil)
	id := e.sim.Devices()[0]
	e.invoke(t, id, simulator.MethodFirmwareUpdate, `{"fwPackageUri":"https://x/fw-5.0.0.bin"}`)
	e.hub.Faults().Throttle(1500 * time.Millisecond)
	// Twin reads are throttled too: wait the storm out before polling.
	time.Sleep(1600 * time.Millisecond)
	r := e.waitReported(t, id, "firmware completed after throttling", func(r map[string]any) bool { return r["firmwareStatus"] == simulator.StatusCompleted })
	if r["fwVersion"] != "5.0.0" {
		t.Errorf("got fwVersion %v, want 5.0.0", r["fwVersion"])
	}
	if got := e.sim.Stats().ReportsDeferred; got == 0 {
		t.Errorf("got %d deferred reports, want the throttled ones counted", got)
	}
}
