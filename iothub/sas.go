package iothub

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTokenTTL is how long the tokens hubflow creates stay valid, as in the
// official SDKs.
const DefaultTokenTTL = time.Hour

// SAS is a parsed shared access signature token.
type SAS struct {
	// RawResource is the sr field exactly as it appeared in the token; the
	// signature covers this text, not a re-encoding of it.
	RawResource string
	// Resource is RawResource URL-decoded.
	Resource  string
	Signature []byte
	Expiry    time.Time
	KeyName   string // skn: set for policy keys, empty for device keys
}

// Token errors returned by ParseSAS and (*SAS).Verify.
var (
	ErrTokenMalformed = errors.New("malformed shared access signature")
	ErrTokenExpired   = errors.New("shared access signature expired")
	ErrTokenSignature = errors.New("shared access signature does not match")
	ErrTokenScope     = errors.New("shared access signature not valid for this resource")
)

// NewSAS signs resource (e.g. "myhub.azure-devices.net" for a service policy
// or "myhub.azure-devices.net/devices/d1" for a device) with key, the base64
// shared access key, valid until expiry. keyName is the policy name and is
// empty for device keys. The resource is URL-encoded before signing, as the
// device SDKs do.
func NewSAS(resource, keyName, key string, expiry time.Time) (string, error) {
	return newSAS(url.QueryEscape(resource), keyName, key, expiry)
}

// NewServiceSAS signs a service token over the raw host name, as the service
// SDKs do (a host with a port keeps its colon).
func NewServiceSAS(host, keyName, key string, expiry time.Time) (string, error) {
	return newSAS(host, keyName, key, expiry)
}

func newSAS(sr, keyName, key string, expiry time.Time) (string, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", fmt.Errorf("sign token: shared access key is not valid base64")
	}
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := sign(k, sr, se)
	var b strings.Builder
	b.WriteString("SharedAccessSignature sr=")
	b.WriteString(sr)
	b.WriteString("&sig=")
	b.WriteString(url.QueryEscape(base64.StdEncoding.EncodeToString(sig)))
	b.WriteString("&se=")
	b.WriteString(se)
	if keyName != "" {
		b.WriteString("&skn=")
		b.WriteString(url.QueryEscape(keyName))
	}
	return b.String(), nil
}

func sign(key []byte, sr, se string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sr))
	m.Write([]byte{'\n'})
	m.Write([]byte(se))
	return m.Sum(nil)
}

// ParseSAS parses a token of the form
// "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]" with fields in any order.
func ParseSAS(token string) (*SAS, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), "SharedAccessSignature ")
	if !ok {
		return nil, fmt.Errorf("%w: missing \"SharedAccessSignature \" prefix", ErrTokenMalformed)
	}
	var t SAS
	var seen = map[string]bool{}
	for _, part := range strings.Split(rest, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: field without '='", ErrTokenMalformed)
		}
		if seen[k] {
			return nil, fmt.Errorf("%w: field %s repeated", ErrTokenMalformed, k)
		}
		seen[k] = true
		switch k {
		case "sr":
			t.RawResource = v
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("%w: bad sr encoding", ErrTokenMalformed)
			}
			t.Resource = dec
		case "sig":
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("%w: bad sig encoding", ErrTokenMalformed)
			}
			sig, err := base64.StdEncoding.DecodeString(dec)
			if err != nil {
				return nil, fmt.Errorf("%w: sig is not base64", ErrTokenMalformed)
			}
			t.Signature = sig
		case "se":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%w: se is not a positive integer", ErrTokenMalformed)
			}
			t.Expiry = time.Unix(n, 0).UTC()
		case "skn":
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("%w: bad skn encoding", ErrTokenMalformed)
			}
			t.KeyName = dec
		default:
			// Unknown fields are ignored, as the hub does.
		}
	}
	switch {
	case !seen["sr"]:
		return nil, fmt.Errorf("%w: sr missing", ErrTokenMalformed)
	case !seen["sig"]:
		return nil, fmt.Errorf("%w: sig missing", ErrTokenMalformed)
	case !seen["se"]:
		return nil, fmt.Errorf("%w: se missing", ErrTokenMalformed)
	}
	return &t, nil
}

// Verify checks the token's signature against key (base64) and its expiry
// against now. It does not check scope; see Covers.
func (t *SAS) Verify(key string, now time.Time) error {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("verify token: key is not valid base64")
	}
	want := sign(k, t.RawResource, strconv.FormatInt(t.Expiry.Unix(), 10))
	if subtle.ConstantTimeCompare(want, t.Signature) != 1 {
		return ErrTokenSignature
	}
	if !now.Before(t.Expiry) {
		return ErrTokenExpired
	}
	return nil
}

// Covers reports whether the token's resource authorises target (for example
// "myhub/devices/d1"). Scope is a prefix by path segment and the host is
// compared case-insensitively: "myhub/devices" covers every device, but
// "myhub/devices/d1" does not cover "myhub/devices/d10".
func (t *SAS) Covers(target string) bool {
	res := strings.TrimSuffix(t.Resource, "/")
	rh, rp, _ := strings.Cut(res, "/")
	th, tp, _ := strings.Cut(target, "/")
	if !strings.EqualFold(rh, th) {
		return false
	}
	if rp == "" {
		return true
	}
	return tp == rp || strings.HasPrefix(tp, rp+"/")
}

// DeviceResource is the SAS resource of a device (or module, when moduleID is
// set) on host.
func DeviceResource(host, deviceID, moduleID string) string {
	r := host + "/devices/" + deviceID
	if moduleID != "" {
		r += "/modules/" + moduleID
	}
	return r
}
