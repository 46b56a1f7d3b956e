package iothub_test

import (
	"errors"
	"testing"

	"github.com/hubflow/hubflow/iothub"
)

func TestTopics_Golden(t *testing.T) {
	tests := []struct{ got, want string }{
		{iothub.MethodRequestTopic("rebootDevice", "1"), "$iothub/methods/POST/rebootDevice/?$rid=1"},
		{iothub.MethodResponseTopic(200, "c2d97d80"), "$iothub/methods/res/200/?$rid=c2d97d80"},
		{iothub.TwinGetTopic("ab"), "$iothub/twin/GET/?$rid=ab"},
		{iothub.TwinReportedTopic("ab"), "$iothub/twin/PATCH/properties/reported/?$rid=ab"},
		{iothub.TwinResponseTopic(204, "ab", 7), "$iothub/twin/res/204/?$rid=ab&$version=7"},
		{iothub.TwinResponseTopic(200, "ab", 0), "$iothub/twin/res/200/?$rid=ab"},
		{iothub.DesiredPatchTopic(2), "$iothub/twin/PATCH/properties/desired/?$version=2"},
		{iothub.MQTTUsername("myhub.azure-devices.net", "pump-7", ""), "myhub.azure-devices.net/pump-7/?api-version=2021-04-12"},
		{iothub.MQTTUsername("h", "d", "m"), "h/d/m/?api-version=2021-04-12"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseMethodRequestTopic(t *testing.T) {
	for _, topic := range []string{"$iothub/methods/POST/firmwareUpdate/?$rid=42", "$iothub/methods/POST/firmwareUpdate?$rid=42"} {
		name, rid, err := iothub.ParseMethodRequestTopic(topic)
		if err != nil || name != "firmwareUpdate" || rid != "42" {
			t.Errorf("%s: got %q %q %v", topic, name, rid, err)
		}
	}
	for _, bad := range []string{"$iothub/methods/POST//?$rid=1", "$iothub/methods/POST/x/?a=1", "$iothub/methods/GET/x/?$rid=1", "$iothub/methods/POST/a/b/?$rid=1"} {
		if _, _, err := iothub.ParseMethodRequestTopic(bad); !errors.Is(err, iothub.ErrTopic) {
			t.Errorf("%s: got %v, want ErrTopic", bad, err)
		}
	}
}

func TestParseTwinResponseTopic(t *testing.T) {
	status, rid, v, err := iothub.ParseTwinResponseTopic("$iothub/twin/res/204/?$rid=c2d9&$version=12")
	if err != nil || status != 204 || rid != "c2d9" || v != 12 {
		t.Errorf("got %d %q %d %v", status, rid, v, err)
	}
	if _, _, _, err := iothub.ParseTwinResponseTopic("$iothub/twin/res/abc/?$rid=1"); err == nil {
		t.Error("non-numeric status accepted")
	}
	if _, _, _, err := iothub.ParseTwinResponseTopic("$iothub/twin/res/200/?$rid=1&$version=x"); err == nil {
		t.Error("bad version accepted")
	}
}

func TestParseDeviceTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  iothub.DeviceTopic
		ok    bool
	}{
		{"$iothub/twin/GET/?$rid=1", iothub.DeviceTopic{Kind: iothub.TopicTwinGet, RID: "1"}, true},
		{"$iothub/twin/PATCH/properties/reported/?$rid=2", iothub.DeviceTopic{Kind: iothub.TopicTwinReported, RID: "2"}, true},
		{"$iothub/methods/res/404/?$rid=3", iothub.DeviceTopic{Kind: iothub.TopicMethodResponse, RID: "3", Status: 404}, true},
		{"devices/d1/messages/events/a=b", iothub.DeviceTopic{Kind: iothub.TopicTelemetry}, true},
		{"devices/d2/messages/events/a=b", iothub.DeviceTopic{}, false},
		{"$iothub/twin/GET/", iothub.DeviceTopic{}, false},
		{"$iothub/twin/PATCH/properties/desired/?$rid=1", iothub.DeviceTopic{}, false},
		{"random/topic", iothub.DeviceTopic{}, false},
	}
	for _, tt := range tests {
		got, err := iothub.ParseDeviceTopic(tt.topic, "d1")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v ok=%v", tt.topic, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseMQTTUsername(t *testing.T) {
	tests := []struct{ in, host, dev, mod string }{
		{"myhub.azure-devices.net/pump-7/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node)", "myhub.azure-devices.net", "pump-7", ""},
		{"localhost:18883/pump-7/?api-version=2021-04-12", "localhost:18883", "pump-7", ""},
		{"h/d/api-version=2020-09-30&model-id=x", "h", "d", ""},
		{"h/d/m/?api-version=2021-04-12", "h", "d", "m"},
	}
	for _, tt := range tests {
		h, d, m, err := iothub.ParseMQTTUsername(tt.in)
		if err != nil || h != tt.host || d != tt.dev || m != tt.mod {
			t.Errorf("%s: got %q %q %q %v", tt.in, h, d, m, err)
		}
	}
	if _, _, _, err := iothub.ParseMQTTUsername("justhost"); err == nil {
		t.Error("bad username accepted")
	}
}

func FuzzParseDeviceTopic(f *testing.F) {
	f.Add("$iothub/twin/GET/?$rid=1")
	f.Add("$iothub/methods/res/200/?$rid=%zz")
	f.Add("devices/d/messages/events/")
	f.Fuzz(func(t *testing.T, topic string) {
		_, _ = iothub.ParseDeviceTopic(topic, "d")
		_, _, _ = iothub.ParseMethodRequestTopic(topic)
		_, _, _, _ = iothub.ParseTwinResponseTopic(topic)
		_, _, _, _ = iothub.ParseMQTTUsername(topic)
	})
}
