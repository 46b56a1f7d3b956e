package iothub

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ConnectionString is a parsed IoT Hub service or device connection string.
// Its String method reproduces a connection string (with the key); Redacted
// is the form to use in logs and errors.
type ConnectionString struct {
	HostName              string
	SharedAccessKeyName   string // policy name: service connection strings only
	SharedAccessKey       string // base64 key
	SharedAccessSignature string // a ready-made token instead of a key
	DeviceID              string
	ModuleID              string
	GatewayHostName       string // host actually dialled, when set
}

// ErrConnectionString is wrapped by every connection-string parse error.
var ErrConnectionString = errors.New("invalid connection string")

var knownKeys = map[string]bool{
	"HostName": true, "SharedAccessKeyName": true, "SharedAccessKey": true,
	"SharedAccessSignature": true, "DeviceId": true, "ModuleId": true,
	"GatewayHostName": true, "x509": true,
}

// ParseConnectionString parses a `Key=Value;…` connection string. Each pair is
// split at its first '=' because base64 keys end in '='. Error messages name
// the missing or unknown part and never include the key material.
func ParseConnectionString(s string) (*ConnectionString, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrConnectionString)
	}
	fields := map[string]string{}
	for i, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: part %d is not Key=Value", ErrConnectionString, i+1)
		}
		if !knownKeys[k] {
			return nil, fmt.Errorf("%w: unknown key %q (expected HostName, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, DeviceId, ModuleId or GatewayHostName)", ErrConnectionString, k)
		}
		if _, dup := fields[k]; dup {
			return nil, fmt.Errorf("%w: %s given twice", ErrConnectionString, k)
		}
		fields[k] = v
	}
	cs := &ConnectionString{
		HostName:              fields["HostName"],
		SharedAccessKeyName:   fields["SharedAccessKeyName"],
		SharedAccessKey:       fields["SharedAccessKey"],
		SharedAccessSignature: fields["SharedAccessSignature"],
		DeviceID:              fields["DeviceId"],
		ModuleID:              fields["ModuleId"],
		GatewayHostName:       fields["GatewayHostName"],
	}
	if _, ok := fields["x509"]; ok {
		return nil, fmt.Errorf("%w: x509 authentication is not supported; use a SharedAccessKey", ErrConnectionString)
	}
	if cs.HostName == "" {
		return nil, fmt.Errorf("%w: HostName is missing", ErrConnectionString)
	}
	if cs.ModuleID != "" && cs.DeviceID == "" {
		return nil, fmt.Errorf("%w: ModuleId needs a DeviceId", ErrConnectionString)
	}
	if cs.DeviceID == "" && cs.SharedAccessKeyName == "" {
		return nil, fmt.Errorf("%w: neither DeviceId (device) nor SharedAccessKeyName (service) is set", ErrConnectionString)
	}
	if cs.DeviceID != "" && cs.SharedAccessKeyName != "" {
		return nil, fmt.Errorf("%w: both DeviceId and SharedAccessKeyName are set; a connection string is either a device's or a service policy's", ErrConnectionString)
	}
	switch {
	case cs.SharedAccessKey == "" && cs.SharedAccessSignature == "":
		return nil, fmt.Errorf("%w: SharedAccessKey is missing", ErrConnectionString)
	case cs.SharedAccessKey != "" && cs.SharedAccessSignature != "":
		return nil, fmt.Errorf("%w: give SharedAccessKey or SharedAccessSignature, not both", ErrConnectionString)
	case cs.SharedAccessSignature != "" && cs.DeviceID == "":
		return nil, fmt.Errorf("%w: SharedAccessSignature is only supported in device connection strings", ErrConnectionString)
	}
	if cs.SharedAccessKey != "" {
		if _, err := base64.StdEncoding.DecodeString(cs.SharedAccessKey); err != nil {
			return nil, fmt.Errorf("%w: SharedAccessKey is not valid base64", ErrConnectionString)
		}
	}
	return cs, nil
}

// IsDevice reports whether cs identifies a device (or module) rather than a
// service policy.
func (cs *ConnectionString) IsDevice() bool { return cs.DeviceID != "" }

// DialHost is the host (with an optional port) to connect to: the gateway
// when one is set, else the hub.
func (cs *ConnectionString) DialHost() string {
	if cs.GatewayHostName != "" {
		return cs.GatewayHostName
	}
	return cs.HostName
}

// String formats cs as a connection string, key included. Use Redacted for
// anything that may be logged.
func (cs *ConnectionString) String() string { return cs.format(false) }

// Redacted formats cs with the key and signature replaced by "REDACTED".
func (cs *ConnectionString) Redacted() string { return cs.format(true) }

func (cs *ConnectionString) format(redact bool) string {
	secret := func(v string) string {
		if redact && v != "" {
			return "REDACTED"
		}
		return v
	}
	type kv struct{ k, v string }
	parts := []kv{
		{"HostName", cs.HostName},
		{"SharedAccessKeyName", cs.SharedAccessKeyName},
		{"DeviceId", cs.DeviceID},
		{"ModuleId", cs.ModuleID},
		{"SharedAccessKey", secret(cs.SharedAccessKey)},
		{"SharedAccessSignature", secret(cs.SharedAccessSignature)},
		{"GatewayHostName", cs.GatewayHostName},
	}
	var b strings.Builder
	for _, p := range parts {
		if p.v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// Secrets returns the secret strings cs carries, for scrubbing text that
// might contain them. The order is stable.
func (cs *ConnectionString) Secrets() []string {
	var out []string
	for _, s := range []string{cs.SharedAccessKey, cs.SharedAccessSignature} {
		if s != "" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
