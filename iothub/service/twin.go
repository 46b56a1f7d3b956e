package service

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hubflow/hubflow/iothub"
)

// GetTwin reads deviceID's twin. An unknown device is an *iothub.Error of
// KindDeviceNotFound.
func (c *Client) GetTwin(ctx context.Context, deviceID string) (*iothub.Twin, error) {
	op := operation{verb: "get twin", device: deviceID}
	if err := checkDeviceID(op, deviceID); err != nil {
		return nil, err
	}
	path, raw := idPath("/twins/", deviceID, "")
	res, err := c.do(ctx, &request{op: op, method: http.MethodGet, path: path, rawPath: raw})
	if err != nil {
		return nil, err
	}
	return decodeTwin(op, res)
}

// UpdateTwin merges patch into deviceID's tags and desired properties and
// returns the whole twin as the hub stored it. etag makes the update
// conditional: "" updates whatever the current version is, otherwise a
// twin whose etag has moved on gives KindPreconditionFailed. The etag may be
// given quoted or bare. A patch with neither tags nor desired properties is
// refused before sending.
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch iothub.TwinPatch, etag string) (*iothub.Twin, error) {
	op := operation{verb: "update twin", device: deviceID}
	if err := checkDeviceID(op, deviceID); err != nil {
		return nil, err
	}
	if len(patch.Tags) == 0 && (patch.Properties == nil || len(patch.Properties.Desired) == 0) {
		return nil, fmt.Errorf("%s: %w: patch has neither tags nor desired properties", op, ErrInvalidInput)
	}
	body, err := marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: patch cannot be encoded: %v", op, ErrInvalidInput, err)
	}
	path, raw := idPath("/twins/", deviceID, "")
	res, err := c.do(ctx, &request{
		op: op, method: http.MethodPatch, path: path, rawPath: raw, body: body, ifMatch: ifMatch(etag),
	})
	if err != nil {
		return nil, err
	}
	return decodeTwin(op, res)
}

func decodeTwin(op operation, res *result) (*iothub.Twin, error) {
	var t iothub.Twin
	if err := decode(op, res, &t, "a twin"); err != nil {
		return nil, err
	}
	if t.DeviceID == "" {
		return nil, fmt.Errorf("%s: %w: twin has no deviceId", op, ErrUnexpectedResponse)
	}
	return &t, nil
}
