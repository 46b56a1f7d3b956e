package state_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
	"github.com/hubflow/hubflow/state/statetest"
)

// recorder is a statetest.TB that keeps failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

const (
	testKey = "c2VjcmV0LWtleS1mb3ItaHViZmxvdy10ZXN0cw=="
	testSig = "dGVzdC1zaWduYXR1cmUtZm9yLWh1YmZsb3c%3D"
)

func TestStore_NeverStoresSecrets(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, state.Options{})
	cs := "HostName=hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey
	sas := "SharedAccessSignature sr=hub.azure-devices.net&sig=" + testSig + "&se=1700000000&skn=iothubowner"
	err := s.CreateRun(ctx, state.NewRun{ID: "r", Job: "firmware", Trigger: state.TriggerManual, Steps: []string{"update"},
		Vars: json.RawMessage(`{"hub":"` + cs + `","image_uri":"https://blob.example/fw.bin?sv=2024&sig=` + testSig + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	appendSync(t, s,
		state.Event{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecFailed,
			Error: "invoke: 401 with token " + sas, Detail: "connection string " + cs, ObservedAt: t0,
			Response: json.RawMessage(`{"echo":"` + cs + `"}`)},
		state.Event{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindProgress,
			Progress: json.RawMessage(`"SharedAccessKey=` + testKey + `"`), ObservedAt: t0},
	)
	if err := s.UpdateRunState(ctx, "r", state.RunFailed, "hub said no to "+sas); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	statetest.AssertNoSecrets(t, path, testKey, testSig)

	r, err := state.OpenReadOnly(ctx, path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	run := loadRun(t, r, "r")
	if !strings.Contains(string(run.Vars), "SharedAccessKey=REDACTED") {
		t.Errorf("vars: got %s, want the key replaced by REDACTED", run.Vars)
	}
}

func TestAssertNoSecrets_FindsPlantedSecret(t *testing.T) {
	// The check must be able to fail, or the test above proves nothing.
	s, path := openStore(t, state.Options{})
	err := s.CreateRun(context.Background(), state.NewRun{ID: "r", Job: "firmware", Trigger: state.TriggerManual,
		Vars: json.RawMessage(`{"token":"` + testKey + `"}`)}) // no marker, so not redacted
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TB: t}
	statetest.AssertNoSecrets(rec, path, "absent-value", testKey)
	if len(rec.errors) == 0 {
		t.Fatal("AssertNoSecrets: got no failure, want the planted key found")
	}
	for _, e := range rec.errors {
		if strings.Contains(e, testKey) {
			t.Errorf("failure message quotes the secret: %s", e)
		}
		if !strings.Contains(e, "secret #2") {
			t.Errorf("failure: got %q, want it to name secret #2", e)
		}
	}
}

func TestRedactSecrets(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no secrets here", "no secrets here"},
		{"HostName=h;SharedAccessKeyName=o;SharedAccessKey=abc+/=;DeviceId=x", "HostName=h;SharedAccessKeyName=o;SharedAccessKey=REDACTED;DeviceId=x"},
		{"sharedaccesskey=abc", "sharedaccesskey=REDACTED"},
		{"SharedAccessSignature sr=h&sig=abc%3D&se=1", "SharedAccessSignature sr=h&sig=REDACTED&se=1"},
		{`{"uri":"https://b/x?sv=1&sig=zz"}`, `{"uri":"https://b/x?sv=1&sig=REDACTED"}`},
		{"config=1", "config=1"}, // "sig=" inside a word is not a signature
		{"SharedAccessKey=", "SharedAccessKey="},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := state.RedactSecrets(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
