package tutorial_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// fakeHub answers InvokeMethod with resp or err, and each GetTwin with the
// next of twins, repeating the last one.
type fakeHub struct {
	resp  *iothub.MethodResponse
	err   error
	calls []service.MethodCall

	twins []twinAnswer
	reads []time.Time
}

type twinAnswer struct {
	reported map[string]any
	err      error
}

var (
	_ tutorial.MethodInvoker = (*fakeHub)(nil)
	_ tutorial.TwinReader    = (*fakeHub)(nil)
)

func (h *fakeHub) InvokeMethod(_ context.Context, _ string, call service.MethodCall) (*iothub.MethodResponse, error) {
	h.calls = append(h.calls, call)
	return h.resp, h.err
}

func (h *fakeHub) GetTwin(_ context.Context, deviceID string) (*iothub.Twin, error) {
	a := h.twins[min(len(h.reads), len(h.twins)-1)]
	h.reads = append(h.reads, time.Now())
	if a.err != nil {
		return nil, a.err
	}
	return &iothub.Twin{DeviceID: deviceID, Properties: iothub.TwinProperties{Reported: a.reported}}, nil
}

func TestCallMethod(t *testing.T) {
	refused := errors.New("hub answered 404")
	cases := []struct {
		name    string
		resp    *iothub.MethodResponse
		err     error
		wantOut string
		wantErr string
	}{
		{"accepted", &iothub.MethodResponse{Status: 200, Payload: json.RawMessage(`{"Response":"Reboot started"}`)}, nil,
			"Method response: status 200, payload {\"Response\":\"Reboot started\"}\n", ""},
		{"refused by the device", &iothub.MethodResponse{Status: 409, Payload: json.RawMessage(`{"Response":"busy"}`)}, nil,
			"Method response: status 409, payload {\"Response\":\"busy\"}\n", "device answered rebootDevice with status 409"},
		{"call failed", nil, refused, "", refused.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hub := &fakeHub{resp: c.resp, err: c.err}
			var out bytes.Buffer
			err := tutorial.CallMethod(context.Background(), hub, "dev-1", "rebootDevice", json.RawMessage(`{"a":1}`), &out)
			if c.wantErr == "" && err != nil {
				t.Errorf("got error %v, want none", err)
			}
			if c.wantErr != "" && (err == nil || err.Error() != c.wantErr) {
				t.Errorf("got error %v, want %q", err, c.wantErr)
			}
			if got := out.String(); got != c.wantOut {
				t.Errorf("got output %q, want %q", got, c.wantOut)
			}
			want := service.MethodCall{Name: "rebootDevice", Payload: json.RawMessage(`{"a":1}`), ResponseTimeout: 30 * time.Second}
			if len(hub.calls) != 1 || hub.calls[0].Name != want.Name || string(hub.calls[0].Payload) != string(want.Payload) ||
				hub.calls[0].ResponseTimeout != want.ResponseTimeout {
				t.Errorf("got calls %+v, want [%+v]", hub.calls, want)
			}
		})
	}
}

func TestPollReported(t *testing.T) {
	offline := &iothub.Error{Status: 404, Code: iothub.CodeDeviceNotOnline, Message: "device offline"}
	gone := &iothub.Error{Status: 404, Message: "no such device"}
	done := map[string]any{"rebootTime": "new"}
	idle := map[string]any{"rebootTime": "old"}
	checkErr := errors.New("device reported failure")
	cases := []struct {
		name      string
		twins     []twinAnswer
		timeout   time.Duration
		wantErr   error
		wantReads int
		wantOut   string
	}{
		{"done at the third read", []twinAnswer{{reported: idle}, {reported: idle}, {reported: done}}, time.Minute, nil, 3, ""},
		{"retryable read is tried again", []twinAnswer{{err: offline}, {reported: done}}, time.Minute, nil, 2,
			"Twin read failed (" + offline.Error() + "); trying again.\n"},
		{"other read error ends it", []twinAnswer{{reported: idle}, {err: gone}}, time.Minute, gone, 2, ""},
		{"check error ends it", []twinAnswer{{reported: map[string]any{"fail": true}}}, time.Minute, checkErr, 1, ""},
		{"context ends it", []twinAnswer{{reported: idle}}, 3500 * time.Millisecond, context.DeadlineExceeded, 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
				defer cancel()
				hub := &fakeHub{twins: c.twins}
				var out bytes.Buffer
				start := time.Now()
				err := tutorial.PollReported(ctx, hub, "dev-1", time.Second, &out, func(reported map[string]any) (bool, error) {
					if reported["fail"] == true {
						return true, checkErr
					}
					return reported["rebootTime"] == "new", nil
				})
				if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
					t.Errorf("got error %v, want %v", err, c.wantErr)
				}
				if len(hub.reads) != c.wantReads {
					t.Fatalf("got %d reads, want %d", len(hub.reads), c.wantReads)
				}
				for i, at := range hub.reads {
					if got, want := at.Sub(start), time.Duration(i+1)*time.Second; got != want {
						t.Errorf("read %d: got it after %s, want %s", i+1, got, want)
					}
				}
				if got := out.String(); !strings.Contains(got, c.wantOut) || (c.wantOut == "" && got != "") {
					t.Errorf("got output %q, want %q", got, c.wantOut)
				}
			})
		})
	}
}
