package iothub_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/iothub"
)

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want iothub.ConnectionString
	}{
		{
			name: "service",
			in:   "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey,
			want: iothub.ConnectionString{HostName: "myhub.azure-devices.net", SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey},
		},
		{
			name: "device with gateway and trailing semicolon",
			in:   "HostName=localhost:8443;DeviceId=pump-7;SharedAccessKey=" + testKey + ";GatewayHostName=localhost:8883;",
			want: iothub.ConnectionString{HostName: "localhost:8443", DeviceID: "pump-7", SharedAccessKey: testKey, GatewayHostName: "localhost:8883"},
		},
		{
			name: "module",
			in:   "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + testKey,
			want: iothub.ConnectionString{HostName: "h", DeviceID: "d", ModuleID: "m", SharedAccessKey: testKey},
		},
		{
			name: "device with token",
			in:   "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h%2Fdevices%2Fd&sig=x&se=1",
			want: iothub.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessSignature: "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=x&se=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := iothub.ParseConnectionString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
			// Round trip through String.
			again, err := iothub.ParseConnectionString(got.String())
			if err != nil || *again != tt.want {
				t.Errorf("round trip: got %+v, %v", again, err)
			}
			if strings.Contains(got.Redacted(), testKey) {
				t.Errorf("Redacted leaks the key: %s", got.Redacted())
			}
		})
	}
}

func TestParseConnectionString_Bad(t *testing.T) {
	tests := []struct {
		in       string
		mentions string
	}{
		{"", "empty"},
		{"HostName=h;SharedAccessKeyName=p", "SharedAccessKey is missing"},
		{"SharedAccessKeyName=p;SharedAccessKey=" + testKey, "HostName is missing"},
		{"HostName=h;SharedAccessKey=" + testKey, "neither DeviceId"},
		{"HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + testKey, "both DeviceId and SharedAccessKeyName"},
		{"HostName=h;DeviceId=d;SharedAccessKey=not-base64!!", "not valid base64"},
		{"HostName=h;DeviceId=d;SharedAccesKey=" + testKey, `unknown key "SharedAccesKey"`},
		{"HostName=h;DeviceId=d;x509=true", "x509"},
		{"HostName=h;HostName=h2;DeviceId=d;SharedAccessKey=" + testKey, "HostName given twice"},
		{"HostName=h;ModuleId=m;SharedAccessKeyName=p;SharedAccessKey=" + testKey, "ModuleId needs a DeviceId"},
		{"HostName;DeviceId=d", "not Key=Value"},
	}
	for _, tt := range tests {
		t.Run(tt.mentions, func(t *testing.T) {
			_, err := iothub.ParseConnectionString(tt.in)
			if !errors.Is(err, iothub.ErrConnectionString) {
				t.Fatalf("got %v, want ErrConnectionString", err)
			}
			if !strings.Contains(err.Error(), tt.mentions) {
				t.Errorf("got %q, want it to mention %q", err, tt.mentions)
			}
			if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "not-base64!!") {
				t.Errorf("error echoes the key: %v", err)
			}
		})
	}
}

func FuzzParseConnectionString(f *testing.F) {
	f.Add("HostName=h;DeviceId=d;SharedAccessKey=" + testKey)
	f.Add("HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + testKey)
	f.Add(";;=;")
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := iothub.ParseConnectionString(s)
		if err != nil {
			return
		}
		if _, err := iothub.ParseConnectionString(cs.String()); err != nil {
			t.Errorf("reparse of %q: %v", cs.String(), err)
		}
	})
}
