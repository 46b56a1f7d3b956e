package hubadapter

import (
	"context"
	"errors"
	"fmt"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/runner"
)

// New returns the runner.Hub that makes its calls through c. The caller
// keeps c and closes it.
func New(c *service.Client) runner.Hub { return hub{c} }

type hub struct{ c *service.Client }

func (h hub) InvokeMethod(ctx context.Context, id string, call runner.MethodCall) (*iothub.MethodResponse, error) {
	resp, err := h.c.InvokeMethod(ctx, id, service.MethodCall{
		Name: call.Name, Payload: call.Payload, ResponseTimeout: call.ResponseTimeout, ConnectTimeout: call.ConnectTimeout,
	})
	return resp, refused(err)
}

func (h hub) PatchDesired(ctx context.Context, id string, desired map[string]any) error {
	_, err := h.c.UpdateTwin(ctx, id, iothub.TwinPatch{Properties: &iothub.TwinPatchProperties{Desired: desired}}, "")
	return refused(err)
}

func (h hub) GetTwin(ctx context.Context, id string) (*iothub.Twin, error) {
	t, err := h.c.GetTwin(ctx, id)
	return t, refused(err)
}

func (h hub) QueryTwins(ctx context.Context, query string) runner.TwinPages {
	return twinPages{h.c.Query(ctx, query, service.MaxPageSize)}
}

// refused marks the client's input errors, which no retry can fix.
func refused(err error) error {
	if errors.Is(err, service.ErrInvalidInput) {
		return fmt.Errorf("%w: %w", runner.ErrRefused, err)
	}
	return err
}

type twinPages struct{ it *service.QueryIterator }

func (p twinPages) More() bool { return p.it.More() }

// Next decodes one page. An item that is not a twin (a query with a
// projection, say) fails the page: the runner needs whole twins.
func (p twinPages) Next(ctx context.Context) ([]*iothub.Twin, error) {
	twins, err := p.it.NextTwins(ctx)
	if err != nil {
		return nil, refused(err)
	}
	return twins, nil
}
