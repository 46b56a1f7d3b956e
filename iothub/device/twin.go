package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubflow/hubflow/iothub"
)

// GetTwin reads the device's twin: the desired and reported sections, each
// with its "$version" member (numbers decode as float64). It raises the
// version below which desired notifications are dropped to the desired
// $version read. While a reconnect is under way it waits for it, within
// ctx. An error answer from the hub is an *iothub.Error.
func (c *Client) GetTwin(ctx context.Context) (desired, reported map[string]any, err error) {
	desired, reported, err = c.getTwin(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if v := iothub.SectionVersion(desired); v > c.desiredVersion {
		c.desiredVersion = v
	}
	c.twinSeen = true
	c.mu.Unlock()
	return desired, reported, nil
}

func (c *Client) getTwin(ctx context.Context) (desired, reported map[string]any, err error) {
	a, err := c.request(ctx, iothub.TwinGetTopic, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("get twin: %w", err)
	}
	if a.status != 200 {
		return nil, nil, hubError("get twin", a)
	}
	var doc struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		return nil, nil, fmt.Errorf("get twin: the hub's answer is not a twin document: %w", err)
	}
	if doc.Desired == nil {
		doc.Desired = map[string]any{}
	}
	if doc.Reported == nil {
		doc.Reported = map[string]any{}
	}
	return doc.Desired, doc.Reported, nil
}

// UpdateReported sends patch (a JSON merge patch: nil members delete) to
// the reported properties and returns the section's new $version (0 if the
// hub did not send one). patch may be anything json.Marshal turns into a
// JSON object; a json.RawMessage or []byte is sent as is and must hold a
// JSON object. Anything else is refused before it is sent. Like GetTwin it
// waits, within ctx, for a reconnect under way. An error answer from the hub
// is an *iothub.Error.
func (c *Client) UpdateReported(ctx context.Context, patch any) (version int64, err error) {
	body, err := patchBody(patch)
	if err != nil {
		return 0, fmt.Errorf("update reported: %w", err)
	}
	a, err := c.request(ctx, iothub.TwinReportedTopic, body)
	if err != nil {
		return 0, fmt.Errorf("update reported: %w", err)
	}
	if a.status < 200 || a.status > 299 {
		return 0, hubError("update reported", a)
	}
	return a.version, nil
}

func patchBody(patch any) ([]byte, error) {
	var body []byte
	switch p := patch.(type) {
	case json.RawMessage:
		body = p
	case []byte:
		body = p
	default:
		b, err := json.Marshal(patch)
		if err != nil {
			return nil, fmt.Errorf("encode patch: %w", err)
		}
		body = b
	}
	if !json.Valid(body) {
		return nil, errors.New("patch is not valid JSON")
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("patch is not a JSON object")
	}
	return body, nil
}

// hubError turns an error answer on a twin topic into an *iothub.Error; its
// body is {"errorCode":…,"message":…} or one of the REST error forms.
func hubError(op string, a twinAnswer) error {
	e := iothub.ParseError(a.status, nil, a.body)
	e.Op = op
	return e
}

// request publishes body on topic(rid) and waits for the hub's answer with
// that $rid.
func (c *Client) request(ctx context.Context, topic func(rid string) string, body []byte) (twinAnswer, error) {
	cn, err := c.waitConn(ctx)
	if err != nil {
		return twinAnswer{}, err
	}
	rid := strconv.FormatUint(c.rid.Add(1), 16)
	ch := make(chan twinAnswer, 1)
	if !cn.register(rid, ch) {
		return twinAnswer{}, cn.lostErr()
	}
	defer cn.unregister(rid)
	if err := waitToken(ctx, cn.pc.Publish(topic(rid), 0, false, body), cn.lostCh); err != nil {
		// paho refuses a publish on a connection it has just seen drop
		// before its loss callback reached us.
		if errors.Is(err, ErrConnectionLost) || errors.Is(err, paho.ErrNotConnected) || cn.isLost() {
			if lerr := cn.lostErr(); lerr != nil {
				return twinAnswer{}, lerr
			}
			return twinAnswer{}, fmt.Errorf("%w: %w", ErrConnectionLost, err)
		}
		return twinAnswer{}, fmt.Errorf("publish: %w", err)
	}
	select {
	case a := <-ch:
		return a, nil
	case <-cn.lostCh:
		select {
		case a := <-ch: // answered just before the connection went
			return a, nil
		default:
			return twinAnswer{}, cn.lostErr()
		}
	case <-ctx.Done():
		return twinAnswer{}, ctx.Err()
	}
}

// twinAnswer routes a twin response to the request waiting for it.
func (c *Client) twinAnswer(cn *conn, topic string, body []byte) {
	status, rid, version, err := iothub.ParseTwinResponseTopic(topic)
	if err != nil {
		c.log.Debug("ignoring twin response", "err", err)
		return
	}
	if !cn.deliver(rid, twinAnswer{status: status, version: version, body: body}) {
		c.log.Debug("twin response for no pending request", "rid", rid, "status", status)
	}
}

// desired handles a desired-properties notification.
func (c *Client) desired(topic string, body []byte) {
	var patch map[string]any
	if err := json.Unmarshal(body, &patch); err != nil || patch == nil {
		c.log.Warn("ignoring desired notification that is not a JSON object")
		return
	}
	version, err := iothub.ParseDesiredPatchTopic(topic)
	if err != nil {
		version = iothub.SectionVersion(patch)
	}
	delete(patch, "$version")
	c.mu.Lock()
	defer c.mu.Unlock()
	if version <= c.desiredVersion {
		c.log.Debug("ignoring stale desired notification", "version", version, "seen", c.desiredVersion)
		return
	}
	c.desiredVersion, c.twinSeen = version, true
	if f := c.onDesired; f != nil {
		c.enqueueLocked(func() { f(patch, version) })
	}
}

// resync re-reads the twin after a reconnect and reports the whole desired
// section as a patch if its version moved while the client was away, since
// the hub does not queue desired notifications for a disconnected device.
func (c *Client) resync() {
	ctx, cancel := context.WithTimeout(c.ctx, resyncTimeout)
	defer cancel()
	desired, _, err := c.getTwin(ctx)
	if err != nil {
		c.log.Debug("re-reading the twin after reconnect failed", "err", err)
		return
	}
	version := iothub.SectionVersion(desired)
	delete(desired, "$version")
	delete(desired, "$metadata")
	c.mu.Lock()
	defer c.mu.Unlock()
	if version <= c.desiredVersion {
		return
	}
	c.desiredVersion = version
	if f := c.onDesired; f != nil {
		c.enqueueLocked(func() { f(desired, version) })
	}
}
