package service

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hubflow/hubflow/iothub"
)

// MaxListDevices is the most devices ListDevices asks for at once.
const MaxListDevices = 1000

// createBody is what CreateDevice sends: only the fields a caller sets, the
// registry fills in the rest.
type createBody struct {
	DeviceID       string                 `json:"deviceId"`
	Status         string                 `json:"status,omitempty"`
	StatusReason   string                 `json:"statusReason,omitempty"`
	Authentication *iothub.Authentication `json:"authentication"`
	Capabilities   *iothub.Capabilities   `json:"capabilities,omitempty"`
}

// CreateDevice registers d and returns the identity as stored. Without
// Authentication the device gets SAS authentication with keys the hub
// generates, returned in Authentication.SymmetricKey. DeviceID is required;
// Status, StatusReason and Capabilities are sent when set, every other field
// is the registry's. An existing id is an *iothub.Error of KindConflict.
func (c *Client) CreateDevice(ctx context.Context, d iothub.Device) (*iothub.Device, error) {
	op := operation{verb: "create device", device: d.DeviceID}
	if err := checkDeviceID(op, d.DeviceID); err != nil {
		return nil, err
	}
	auth := d.Authentication
	if auth == nil {
		// Empty keys ask the hub to generate them, as the official SDKs do.
		auth = &iothub.Authentication{Type: "sas", SymmetricKey: &iothub.SymmetricKey{}}
	}
	body, err := marshal(createBody{
		DeviceID: d.DeviceID, Status: d.Status, StatusReason: d.StatusReason,
		Authentication: auth, Capabilities: d.Capabilities,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w: device cannot be encoded: %v", op, ErrInvalidInput, err)
	}
	path, raw := idPath("/devices/", d.DeviceID, "")
	res, err := c.do(ctx, &request{op: op, method: http.MethodPut, path: path, rawPath: raw, body: body})
	if err != nil {
		return nil, err
	}
	return decodeDevice(op, res)
}

// GetDevice reads deviceID's identity. An unknown device is an
// *iothub.Error of KindDeviceNotFound.
func (c *Client) GetDevice(ctx context.Context, deviceID string) (*iothub.Device, error) {
	op := operation{verb: "get device", device: deviceID}
	if err := checkDeviceID(op, deviceID); err != nil {
		return nil, err
	}
	path, raw := idPath("/devices/", deviceID, "")
	res, err := c.do(ctx, &request{op: op, method: http.MethodGet, path: path, rawPath: raw})
	if err != nil {
		return nil, err
	}
	return decodeDevice(op, res)
}

// ListDevices returns up to top device identities (0: the hub's default
// number, at most MaxListDevices). Use Query to walk a registry of any size.
func (c *Client) ListDevices(ctx context.Context, top int) ([]iothub.Device, error) {
	op := operation{verb: "list devices", noID: true}
	if top < 0 || top > MaxListDevices {
		return nil, fmt.Errorf("%s: %w: top %d is outside 0–%d", op, ErrInvalidInput, top, MaxListDevices)
	}
	r := &request{op: op, method: http.MethodGet, path: "/devices"}
	if top > 0 {
		r.query = "top=" + strconv.Itoa(top)
	}
	res, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var ds []iothub.Device
	if err := decode(op, res, &ds, "a list of devices"); err != nil {
		return nil, err
	}
	if ds == nil {
		return nil, fmt.Errorf("%s: %w: body is null, not a list of devices", op, ErrUnexpectedResponse)
	}
	for i := range ds {
		if ds[i].DeviceID == "" {
			return nil, fmt.Errorf("%s: %w: device %d of the list has no deviceId", op, ErrUnexpectedResponse, i)
		}
	}
	return ds, nil
}

// DeleteDevice removes deviceID's identity (and its twin). etag "" deletes
// whatever the current version is; otherwise an identity whose etag has
// moved on gives KindPreconditionFailed. An unknown device is
// KindDeviceNotFound.
func (c *Client) DeleteDevice(ctx context.Context, deviceID, etag string) error {
	op := operation{verb: "delete device", device: deviceID}
	if err := checkDeviceID(op, deviceID); err != nil {
		return err
	}
	path, raw := idPath("/devices/", deviceID, "")
	_, err := c.do(ctx, &request{op: op, method: http.MethodDelete, path: path, rawPath: raw, ifMatch: ifMatch(etag)})
	return err
}

func decodeDevice(op operation, res *result) (*iothub.Device, error) {
	var d iothub.Device
	if err := decode(op, res, &d, "a device identity"); err != nil {
		return nil, err
	}
	if d.DeviceID == "" {
		return nil, fmt.Errorf("%s: %w: device identity has no deviceId", op, ErrUnexpectedResponse)
	}
	return &d, nil
}
