package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/hubflow/hubflow/iothub"
)

// methodCall starts the handler for a direct-method call on its own
// goroutine, so a slow handler holds up neither paho nor other calls.
func (c *Client) methodCall(cn *conn, topic string, payload []byte) {
	name, rid, err := iothub.ParseMethodRequestTopic(topic)
	if err != nil {
		c.log.Debug("ignoring method request", "err", err)
		return
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("null")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.methods[name]
	c.goLocked(func() {
		status, body := c.runMethod(name, h, payload)
		c.respond(cn, rid, status, body)
	})
}

// runMethod calls h and vets its answer: the hub takes only JSON of at most
// iothub.MaxMethodPayload bytes, and a handler's mistake should reach the
// caller as a 500 rather than as a timeout.
func (c *Client) runMethod(name string, h MethodHandler, payload json.RawMessage) (status int, body []byte) {
	if h == nil {
		c.log.Debug("unknown method", "method", name)
		return 404, errorMessage("Unknown method: " + name)
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Warn("method handler panicked", "method", name, "panic", fmt.Sprint(r))
			status, body = 500, errorMessage("method handler failed")
		}
	}()
	status, body = h(c.ctx, payload)
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		body = []byte("null")
	case len(body) > iothub.MaxMethodPayload:
		c.log.Warn("method response too large; answering 500 instead", "method", name, "bytes", len(body), "limit", iothub.MaxMethodPayload)
		return 500, errorMessage(fmt.Sprintf("response payload of %d bytes exceeds the %d-byte limit", len(body), iothub.MaxMethodPayload))
	case !json.Valid(body):
		c.log.Warn("method response is not JSON; answering 500 instead", "method", name)
		return 500, errorMessage("method handler returned a response that is not JSON")
	}
	if status < 0 {
		c.log.Warn("method handler returned a negative status; answering 500 instead", "method", name, "status", status)
		return 500, errorMessage(fmt.Sprintf("method handler returned status %d", status))
	}
	return status, body
}

func errorMessage(msg string) []byte {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	return b
}

// respond publishes a method answer on the connection the call came in on,
// or on its successor if that one has been replaced meanwhile.
func (c *Client) respond(cn *conn, rid string, status int, body []byte) {
	if cn.isLost() {
		c.mu.Lock()
		cn = c.conn
		c.mu.Unlock()
		if cn == nil {
			c.log.Debug("dropping method response: not connected", "rid", rid)
			return
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
	defer cancel()
	if err := waitToken(ctx, cn.pc.Publish(iothub.MethodResponseTopic(status, rid), 0, false, body), cn.lostCh); err != nil {
		c.log.Debug("sending method response failed", "rid", rid, "err", err)
	}
}
