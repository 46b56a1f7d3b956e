package iothub

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// APIVersion is the REST api-version hubflow sends.
const APIVersion = "2021-04-12"

// MaxMethodPayload is the hub's limit on a direct-method request or response
// payload, in bytes.
const MaxMethodPayload = 128 * 1024

// MaxQueryLength is the hub's limit on the text of one query.
const MaxQueryLength = 8192

// MethodRequest is the body of POST /twins/{id}/methods.
type MethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// MethodResponse is the hub's answer to a method invocation that reached the
// device: the status the device chose and the JSON it sent back.
type MethodResponse struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// Twin is a device twin as the service REST API returns it.
type Twin struct {
	DeviceID                  string          `json:"deviceId"`
	ModuleID                  string          `json:"moduleId,omitempty"`
	ETag                      string          `json:"etag,omitempty"`
	DeviceETag                string          `json:"deviceEtag,omitempty"`
	Version                   int64           `json:"version,omitempty"`
	Status                    string          `json:"status,omitempty"`
	StatusReason              string          `json:"statusReason,omitempty"`
	StatusUpdateTime          string          `json:"statusUpdateTime,omitempty"`
	ConnectionState           string          `json:"connectionState,omitempty"`
	LastActivityTime          string          `json:"lastActivityTime,omitempty"`
	CloudToDeviceMessageCount int             `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string          `json:"authenticationType,omitempty"`
	Tags                      map[string]any  `json:"tags,omitempty"`
	Properties                TwinProperties  `json:"properties"`
	Capabilities              *Capabilities   `json:"capabilities,omitempty"`
	X509Thumbprint            *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// TwinProperties holds the desired and reported sections. Each section
// includes its "$version" and "$metadata" members as sent by the hub.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// Capabilities of a device identity.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// X509Thumbprint of a device identity (unused by SAS devices, always sent).
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// TwinPatch is the body of PATCH /twins/{id}: either part may be nil.
type TwinPatch struct {
	Tags       map[string]any       `json:"tags,omitempty"`
	Properties *TwinPatchProperties `json:"properties,omitempty"`
}

// TwinPatchProperties carries a desired-properties patch.
type TwinPatchProperties struct {
	Desired map[string]any `json:"desired,omitempty"`
}

// SectionVersion returns the "$version" of a desired or reported section,
// or 0 when absent.
func SectionVersion(section map[string]any) int64 {
	switch v := section["$version"].(type) {
	case float64:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

// Device is a device identity in the registry.
type Device struct {
	DeviceID                   string          `json:"deviceId"`
	GenerationID               string          `json:"generationId,omitempty"`
	ETag                       string          `json:"etag,omitempty"`
	ConnectionState            string          `json:"connectionState,omitempty"`
	Status                     string          `json:"status,omitempty"`
	StatusReason               string          `json:"statusReason,omitempty"`
	ConnectionStateUpdatedTime string          `json:"connectionStateUpdatedTime,omitempty"`
	StatusUpdatedTime          string          `json:"statusUpdatedTime,omitempty"`
	LastActivityTime           string          `json:"lastActivityTime,omitempty"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount"`
	Authentication             *Authentication `json:"authentication,omitempty"`
	Capabilities               *Capabilities   `json:"capabilities,omitempty"`
}

// Authentication of a device identity.
type Authentication struct {
	Type           string          `json:"type"`
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// SymmetricKey pair of a device identity.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// TimeFormat is how hubflow and the emulator write hub timestamps.
const TimeFormat = "2006-01-02T15:04:05.0000000Z07:00"

// FormatTime renders t as the hub does: UTC with seven fractional digits.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseTime reads a hub timestamp, with or without a zone (a zone-less value
// is UTC, as the hub's never-set "0001-01-01T00:00:00" is).
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse hub time %q: not RFC 3339", s)
}
