package emulator

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func FuzzTwinPatch(f *testing.F) {
	for _, s := range []string{
		`{"tags":{"a":1},"properties":{"desired":{"b":{"c":null},"d":[1,{"e":2}]}}}`,
		`{"properties":{"reported":{"x":1}}}`,
		`{"TAGS":{"a.b":1}}`,
		`{"tags":{"n":4503599627370496}}`,
		`[]`, `null`, `{"properties":5}`, `{"tags":{"":1}}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, replace bool) {
		u, err := parseTwinUpdate(body, replace)
		if err != nil {
			return
		}
		now := time.Unix(1700000000, 0)
		d := newDevice("d", now)
		ch, err := d.twin.patchService(u.tags, u.desired, replace, now)
		if err != nil {
			return
		}
		if ch.desiredPatch != nil {
			if _, err := json.Marshal(ch.desiredPatch); err != nil {
				t.Fatalf("desired notification does not encode: %v", err)
			}
		}
		out, err := json.Marshal(d.twinDoc())
		if err != nil {
			t.Fatalf("twin does not encode: %v", err)
		}
		if !json.Valid(out) {
			t.Fatal("twin JSON is invalid")
		}
	})
}

func FuzzReportedPatch(f *testing.F) {
	for _, s := range []string{`{"fw":{"status":"ok"}}`, `{"a":null}`, `[1]`, `{"$version":1}`, ` `, `{"a":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		patch, err := parseReported(body)
		if err != nil {
			return
		}
		d := newDevice("d", time.Unix(0, 0))
		if _, err := d.twin.patchReported(patch, time.Unix(1, 0)); err != nil {
			return
		}
		if _, err := json.Marshal(deviceSection(d.twin.reported, d.twin.repVer)); err != nil {
			t.Fatalf("reported section does not encode: %v", err)
		}
	})
}

func FuzzMethodBody(f *testing.F) {
	for _, s := range []string{
		`{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		`{"MethodName":"m"}`, `{"methodName":"m","payload":""}`, `{"methodName":"a/b"}`,
		`{"methodName":"m","responseTimeoutInSeconds":1e3}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, rerr := parseMethodRequest(body)
		if rerr != nil {
			if rerr.status != 400 {
				t.Fatalf("got status %d for a bad body, want 400", rerr.status)
			}
			return
		}
		if !json.Valid(req.payload) {
			t.Fatalf("forwarded payload %q is not JSON", req.payload)
		}
		name, _, err := iothub.ParseMethodRequestTopic(iothub.MethodRequestTopic(req.name, "1"))
		if err != nil || name != req.name {
			t.Fatalf("method name %q does not survive its topic: %v", req.name, err)
		}
	})
}

func FuzzDeviceTopic(f *testing.F) {
	for _, s := range []string{
		"$iothub/twin/GET/?$rid=1", "$iothub/twin/PATCH/properties/reported/?$rid=x&$version=3",
		"$iothub/methods/res/200/?$rid=ab", "devices/d1/messages/events/a=b", "$iothub/methods/POST/#",
		"devices/d1/messages/devicebound/#", "devices/d2/messages/devicebound/#", "$iothub/twin/res/+",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		dt, err := iothub.ParseDeviceTopic(topic, "d1")
		if err == nil && dt.Kind == iothub.TopicTelemetry && len(topic) < len("devices/d1/messages/events/") {
			t.Fatalf("telemetry topic %q accepted", topic)
		}
		if allowedFilter(topic, "d1") && allowedFilter(topic, "d2") {
			switch topic {
			case iothub.TopicMethodsFilter, iothub.TopicTwinResponseFilter, iothub.TopicDesiredFilter:
			default:
				t.Fatalf("filter %q is allowed for two devices", topic)
			}
		}
	})
}

func FuzzDevicePayload(f *testing.F) {
	for _, s := range []string{"", "null", `{"a":1}`, "oops", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if out := devicePayload(b); !json.Valid(out) {
			t.Fatalf("devicePayload(%q) = %q is not JSON", b, out)
		}
	})
}
