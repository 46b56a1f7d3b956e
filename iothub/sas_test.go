package iothub_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// testKey is base64("hubflow-test-key-0123456789abcd"); the expected
// signatures below were computed independently with openssl's HMAC-SHA256.
const testKey = "aHViZmxvdy10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZA=="

var testExpiry = time.Unix(1767225600, 0)

func TestNewSAS_KnownAnswers(t *testing.T) {
	tests := []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{
			name: "device",
			got: func() (string, error) {
				return iothub.NewSAS("myhub.azure-devices.net/devices/pump-7", "", testKey, testExpiry)
			},
			want: "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fpump-7&sig=7iEBvyzfLU0l1rK3gfmGGVcmv%2BEA3WJn7mmA8OcbGQU%3D&se=1767225600",
		},
		{
			name: "service",
			got: func() (string, error) {
				return iothub.NewServiceSAS("myhub.azure-devices.net", "iothubowner", testKey, testExpiry)
			},
			want: "SharedAccessSignature sr=myhub.azure-devices.net&sig=Z3JcKqefjgyy4%2FLiMeYDO4xSkhwuyEiAN45yOdH2q3g%3D&se=1767225600&skn=iothubowner",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.got()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestNewSAS_BadKey(t *testing.T) {
	_, err := iothub.NewSAS("h/devices/d", "", "not base64!!", testExpiry)
	if err == nil {
		t.Fatal("got nil error for a non-base64 key")
	}
	if strings.Contains(err.Error(), "not base64!!") {
		t.Errorf("error echoes the key: %v", err)
	}
}

func TestSAS_VerifyAndScope(t *testing.T) {
	tok, err := iothub.NewSAS("myhub.azure-devices.net/devices/pump-7", "", testKey, testExpiry)
	if err != nil {
		t.Fatal(err)
	}
	sas, err := iothub.ParseSAS(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sas.Resource, "myhub.azure-devices.net/devices/pump-7"; got != want {
		t.Errorf("resource: got %q, want %q", got, want)
	}
	before := testExpiry.Add(-time.Second)
	if err := sas.Verify(testKey, before); err != nil {
		t.Errorf("verify valid token: %v", err)
	}
	if err := sas.Verify(testKey, testExpiry); !errors.Is(err, iothub.ErrTokenExpired) {
		t.Errorf("verify at expiry: got %v, want ErrTokenExpired", err)
	}
	other := "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXk="
	if err := sas.Verify(other, before); !errors.Is(err, iothub.ErrTokenSignature) {
		t.Errorf("verify with other key: got %v, want ErrTokenSignature", err)
	}
	scopes := []struct {
		target string
		want   bool
	}{
		{"myhub.azure-devices.net/devices/pump-7", true},
		{"MYHUB.azure-devices.net/devices/pump-7", true},
		{"myhub.azure-devices.net/devices/pump-7/modules/m", true},
		{"myhub.azure-devices.net/devices/pump-70", false},
		{"myhub.azure-devices.net/devices/pump-8", false},
		{"otherhub.azure-devices.net/devices/pump-7", false},
	}
	for _, s := range scopes {
		if got := sas.Covers(s.target); got != s.want {
			t.Errorf("Covers(%q): got %v, want %v", s.target, got, s.want)
		}
	}
}

func TestParseSAS_FieldOrderAndRawResource(t *testing.T) {
	// The Node service SDK sends the raw host (with its port) and the fields
	// in the order sr, sig, skn, se; the signature covers sr as sent.
	tok, err := iothub.NewServiceSAS("localhost:8443", "service", testKey, testExpiry)
	if err != nil {
		t.Fatal(err)
	}
	sas, err := iothub.ParseSAS(tok)
	if err != nil {
		t.Fatal(err)
	}
	reordered := "SharedAccessSignature se=1767225600&skn=service&sig=" +
		strings.SplitN(strings.SplitN(tok, "sig=", 2)[1], "&", 2)[0] + "&sr=localhost:8443"
	sas2, err := iothub.ParseSAS(reordered)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*iothub.SAS{sas, sas2} {
		if s.KeyName != "service" || s.RawResource != "localhost:8443" {
			t.Errorf("got skn %q sr %q, want service localhost:8443", s.KeyName, s.RawResource)
		}
		if err := s.Verify(testKey, testExpiry.Add(-time.Minute)); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
}

func TestParseSAS_Malformed(t *testing.T) {
	for _, tok := range []string{
		"",
		"sr=a&sig=b&se=1",
		"SharedAccessSignature sig=YQ%3D%3D&se=1",
		"SharedAccessSignature sr=a&se=1",
		"SharedAccessSignature sr=a&sig=YQ%3D%3D",
		"SharedAccessSignature sr=a&sig=YQ%3D%3D&se=abc",
		"SharedAccessSignature sr=a&sig=!!!&se=1",
		"SharedAccessSignature sr=a&sr=b&sig=YQ%3D%3D&se=1",
		"SharedAccessSignature sr",
	} {
		if _, err := iothub.ParseSAS(tok); !errors.Is(err, iothub.ErrTokenMalformed) {
			t.Errorf("ParseSAS(%q): got %v, want ErrTokenMalformed", tok, err)
		}
	}
}
