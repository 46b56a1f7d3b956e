package simulator

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"SAS URL", "https://fw.blob.core.windows.net/img/edge-2.1.0.bin?sv=2024&se=2030-01-01&sig=c2lnbmF0dXJl%3D",
			"https://fw.blob.core.windows.net/img/edge-2.1.0.bin?REDACTED"},
		{"URL without query", "https://firmware.example.com/edge-2.1.0.bin", "https://firmware.example.com/edge-2.1.0.bin"},
		{"fragment", "https://h/p#sig=abc", "https://h/p#REDACTED"},
		{"URL quoted in an error", `Post "https://h:8443/x?api-version=1&sig=abc": dial tcp: refused`,
			`Post "https://h:8443/x?REDACTED": dial tcp: refused`},
		{"two URLs", "a https://h/1?k=1 b mqtts://h/2?k=2", "a https://h/1?REDACTED b mqtts://h/2?REDACTED"},
		{"SAS token", "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1700000000&skn=service",
			"SharedAccessSignature sr=h%2Fdevices%2Fd&sig=REDACTED&se=REDACTED&skn=REDACTED"},
		{"connection string", "HostName=h;DeviceId=d;SharedAccessKey=a2V5",
			"HostName=h;DeviceId=d;SharedAccessKey=REDACTED"},
		{"marker case", "SIG=abc", "SIG=REDACTED"},
		{"marker inside a word", "case=1 xsig=2", "case=1 xsig=2"},
		{"no secret", "device osaka-1 rebooting for 2s", "device osaka-1 rebooting for 2s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := redact(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRedactingHandler checks every way a secret reaches a record: the
// message, a string, an error, a URL value, a group and attributes bound
// with With.
func TestRedactingHandler(t *testing.T) {
	const sig = "c2VjcmV0LXNpZ25hdHVyZQ"
	signed := "https://fw.example.com/edge-2.1.0.bin?se=2030&sig=" + sig
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(redactingHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	log = log.With("bound", signed).WithGroup("g")
	log.Debug("fetch "+signed, "uri", signed, "err", errors.New("get "+signed+": refused"), "url", u,
		slog.Group("inner", "token", "SharedAccessSignature sr=h&sig="+sig), "device", "osaka-1")
	text := buf.String()
	if strings.Contains(text, sig) {
		t.Errorf("the signature is in the log:\n%s", text)
	}
	for _, want := range []string{"fw.example.com/edge-2.1.0.bin?REDACTED", "device=osaka-1", "g.inner.token"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
}
