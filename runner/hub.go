package runner

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// Hub is what the runner needs from an IoT hub. iothub/service provides it
// for Azure IoT Hub and the emulator (cmd/hubflow adapts it); errors the hub
// answered are *iothub.Error, so that iothub.KindOf classifies them.
type Hub interface {
	// InvokeMethod calls a direct method on a device and returns the
	// device's answer, whatever its status.
	InvokeMethod(ctx context.Context, deviceID string, call MethodCall) (*iothub.MethodResponse, error)
	// PatchDesired merges desired into the device's desired properties.
	PatchDesired(ctx context.Context, deviceID string, desired map[string]any) error
	// GetTwin reads one device's twin.
	GetTwin(ctx context.Context, deviceID string) (*iothub.Twin, error)
	// QueryTwins prepares a twin query ("SELECT * FROM devices WHERE ...")
	// for reading page by page; nothing is sent before the first Next.
	QueryTwins(ctx context.Context, query string) TwinPages
}

// TwinPages reads the pages of one twin query.
type TwinPages interface {
	// More reports whether there is another page to read.
	More() bool
	// Next returns the next page. After an error, Next asks for the same
	// page again.
	Next(ctx context.Context) ([]*iothub.Twin, error)
}

// ErrRefused is wrapped by a Hub's errors for calls it refused before
// sending anything (an invalid method name or payload, say): the runner
// fails the step rather than retrying it. Other errors that are not
// *iothub.Error are taken for network trouble and retried.
var ErrRefused = errors.New("call refused before sending")

// MethodCall is one direct-method invocation.
type MethodCall struct {
	Name            string
	Payload         json.RawMessage // nil means null
	ResponseTimeout time.Duration   // 0 means the hub's default (30 s)
	ConnectTimeout  time.Duration   // 0 means the device must be connected
}
