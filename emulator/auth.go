package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// perm is a set of the hub's access rights.
type perm uint8

const (
	permRegistryRead perm = 1 << iota
	permRegistryWrite
	permServiceConnect
	permDeviceConnect
)

// Policy names of the hub's default shared access policies.
const (
	PolicyOwner             = "iothubowner"
	PolicyService           = "service"
	PolicyRegistryRead      = "registryRead"
	PolicyRegistryReadWrite = "registryReadWrite"
	PolicyDevice            = "device"
)

// policyRights are the rights of each default policy.
var policyRights = map[string]perm{
	PolicyOwner:             permRegistryRead | permRegistryWrite | permServiceConnect | permDeviceConnect,
	PolicyService:           permServiceConnect,
	PolicyRegistryRead:      permRegistryRead,
	PolicyRegistryReadWrite: permRegistryRead | permRegistryWrite,
	PolicyDevice:            permDeviceConnect,
}

// policy is a shared access policy with its two keys.
type policy struct {
	Name      string `json:"name"`
	Primary   string `json:"primaryKey"`
	Secondary string `json:"secondaryKey"`
	rights    perm
}

func newPolicies() map[string]*policy {
	out := make(map[string]*policy, len(policyRights))
	for name, r := range policyRights {
		out[name] = &policy{Name: name, Primary: newKey(), Secondary: newKey(), rights: r}
	}
	return out
}

// newKey returns a random 256-bit key in base64, the size the hub generates.
func newKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand.Read does not return errors on supported platforms.
		panic("emulator: crypto/rand failed: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

// validKey reports whether k is base64 of 16 to 64 bytes, the hub's range.
func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) >= 16 && len(b) <= 64
}

// authError is why a token was refused; its message is safe to return (it
// never contains the token).
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

func authErrorf(format string, args ...any) error {
	return &authError{msg: fmt.Sprintf(format, args...)}
}

// hostOnly strips a port and brackets and lower-cases h.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

// hostAllowed reports whether a host named in a token or username is this
// hub: loopback names (with any port) or the hub's own host name.
func (h *Hub) hostAllowed(host string) bool {
	switch hostOnly(host) {
	case "localhost", "127.0.0.1", "::1", hostOnly(h.hostName):
		return true
	}
	return false
}

// authorizeService checks an Authorization header value for a REST request
// on path and returns the rights it grants.
func (h *Hub) authorizeService(header, path string) (perm, error) {
	if header == "" {
		return 0, authErrorf("the Authorization header is missing; send a SharedAccessSignature token")
	}
	tok, err := iothub.ParseSAS(header)
	if err != nil {
		return 0, authErrorf("the Authorization header is not a valid SharedAccessSignature (%v)", err)
	}
	if tok.KeyName == "" {
		return 0, authErrorf("the token has no skn: service requests need a shared access policy token")
	}
	p, ok := h.policies[tok.KeyName]
	if !ok {
		return 0, authErrorf("unknown shared access policy %q", tok.KeyName)
	}
	if err := verifyEither(tok, p.Primary, p.Secondary, h.now()); err != nil {
		return 0, err
	}
	host, _, _ := strings.Cut(tok.Resource, "/")
	if !h.hostAllowed(host) {
		return 0, authErrorf("the token is for host %q, not this hub", host)
	}
	if !tok.Covers(host + path) {
		return 0, authErrorf("the token's resource does not cover %s", path)
	}
	return p.rights, nil
}

// verifyEither accepts a token signed with either of a key pair.
func verifyEither(tok *iothub.SAS, primary, secondary string, now time.Time) error {
	err := tok.Verify(primary, now)
	if errors.Is(err, iothub.ErrTokenSignature) && secondary != "" {
		err = tok.Verify(secondary, now)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, iothub.ErrTokenExpired):
		return authErrorf("the token expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	case errors.Is(err, iothub.ErrTokenSignature):
		return authErrorf("the token's signature does not match the key")
	}
	return authErrorf("the token cannot be verified")
}

// authorizeDevice checks a device's MQTT password against the device (or
// the device policy) and returns the token's expiry.
func (h *Hub) authorizeDevice(d *device, host, password string) (time.Time, error) {
	tok, err := iothub.ParseSAS(password)
	if err != nil {
		return time.Time{}, authErrorf("password is not a SharedAccessSignature")
	}
	if tok.KeyName != "" {
		p, ok := h.policies[tok.KeyName]
		if !ok || p.rights&permDeviceConnect == 0 {
			return time.Time{}, authErrorf("policy %q cannot connect devices", tok.KeyName)
		}
		if err := verifyEither(tok, p.Primary, p.Secondary, h.now()); err != nil {
			return time.Time{}, err
		}
	} else {
		d.mu.Lock()
		primary, secondary := d.primaryKey, d.secondaryKey
		d.mu.Unlock()
		if err := verifyEither(tok, primary, secondary, h.now()); err != nil {
			return time.Time{}, err
		}
	}
	tokHost, _, _ := strings.Cut(tok.Resource, "/")
	if !h.hostAllowed(tokHost) {
		return time.Time{}, authErrorf("token host %q is not this hub", tokHost)
	}
	if !tok.Covers(tokHost + "/devices/" + d.id) {
		return time.Time{}, authErrorf("token does not cover device %q", d.id)
	}
	return tok.Expiry, nil
}
