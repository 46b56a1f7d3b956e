package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/hubflow/hubflow/iothub"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultMaxConns       = 64
	DefaultTokenTTL       = iothub.DefaultTokenTTL
	DefaultRequestTimeout = 60 * time.Second
)

// tokenRenewMargin is how long before expiry a cached token is replaced, so
// that a token never expires while a request carrying it is on its way.
const tokenRenewMargin = 5 * time.Minute

// Response size caps: a hub never sends more, and a runaway answer must not
// exhaust memory. Query pages hold up to a thousand full twins.
const (
	maxResponseBody = 8 << 20
	maxQueryBody    = 128 << 20
	maxErrorBody    = 64 << 10
)

// contentTypeJSON is sent with every request that has a body, as the
// official SDKs do, and only then.
const contentTypeJSON = "application/json; charset=utf-8"

var (
	// ErrInvalidInput is wrapped by every error for a call refused before
	// anything was sent: a bad device id, method name, timeout, payload,
	// query or page size. Retrying the same call cannot succeed.
	ErrInvalidInput = errors.New("invalid input")

	// ErrUnexpectedResponse is wrapped when the hub answered with a success
	// status but a body that is not the documented shape.
	ErrUnexpectedResponse = errors.New("unexpected hub response")
)

// Config configures a Client. ConnectionString is required; every other
// field has a default.
type Config struct {
	// ConnectionString is a service policy's connection string
	// (HostName, SharedAccessKeyName, SharedAccessKey). HostName is the host
	// dialled and may carry a port, e.g. "localhost:8443".
	ConnectionString *iothub.ConnectionString

	// RootCAs are the roots trusted for the hub's certificate (the
	// emulator's CA). Nil means the system roots. A non-nil pool is used
	// instead of the system roots, not merged with them: x509.CertPool
	// cannot be enumerated, and a hub is either Azure (system roots) or a
	// local one with its own CA. Setting it together with HTTPClient is an
	// error; configure that client's transport instead.
	RootCAs *x509.CertPool

	// HTTPClient, when set, carries every request; the caller then owns its
	// pool, proxy and TLS settings. A client whose transport skips TLS
	// verification is refused. When nil, New builds a keep-alive HTTPS
	// client with MaxConns connections to the hub.
	HTTPClient *http.Client

	// MaxConns bounds the connections (idle and in use) New's own client
	// opens to the hub; requests beyond it wait for a free connection.
	// Default DefaultMaxConns; the runner sets it to its concurrency.
	MaxConns int

	// UserAgent is sent on every request. Default "hubflow/<version>".
	UserAgent string

	// TokenTTL is the lifetime of the SAS tokens the client signs. A token
	// is cached and replaced when less than 5 minutes (or half the TTL,
	// when the TTL is shorter than 10 minutes) remain. Default 1 hour.
	TokenTTL time.Duration

	// RequestTimeout bounds each call other than InvokeMethod, whose bound
	// follows from its own timeouts. Default DefaultRequestTimeout. The
	// context's deadline applies as well.
	RequestTimeout time.Duration

	// Now is the clock used for token expiry. Default time.Now.
	Now func() time.Time

	// Logger receives Debug records for each request (no secrets). Nil
	// discards.
	Logger *slog.Logger
}

// Client talks to one hub's service REST API. It is safe for concurrent
// use; create one per hub and share it.
type Client struct {
	host       string
	keyName    string
	key        string
	http       *http.Client
	ownsHTTP   bool
	userAgent  string
	ttl        time.Duration
	renewAt    time.Duration // renew when less than this remains
	reqTimeout time.Duration
	now        func() time.Time
	log        *slog.Logger

	tok   atomic.Pointer[sasToken]
	tokMu sync.Mutex // serialises signing, not reading
}

type sasToken struct {
	value  string
	expiry time.Time
}

// New checks cfg and returns a Client. It opens no connection.
func New(cfg Config) (*Client, error) {
	cs := cfg.ConnectionString
	switch {
	case cs == nil:
		return nil, errors.New("new service client: connection string is missing")
	case cs.IsDevice():
		return nil, errors.New("new service client: a device connection string was given; a service policy's is needed")
	case cs.SharedAccessKeyName == "":
		return nil, errors.New("new service client: connection string has no SharedAccessKeyName")
	case cs.SharedAccessKey == "":
		return nil, errors.New("new service client: connection string has no SharedAccessKey")
	}
	if err := checkHost(cs.HostName); err != nil {
		return nil, fmt.Errorf("new service client: %w", err)
	}
	// Signing once here reports a bad key now rather than on the first call.
	if _, err := iothub.NewServiceSAS(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Unix(1, 0)); err != nil {
		return nil, fmt.Errorf("new service client: %w", err)
	}
	if cfg.MaxConns < 0 {
		return nil, fmt.Errorf("new service client: MaxConns %d is negative", cfg.MaxConns)
	}
	if cfg.TokenTTL < 0 || cfg.RequestTimeout < 0 {
		return nil, errors.New("new service client: TokenTTL and RequestTimeout must not be negative")
	}
	if cfg.HTTPClient != nil && cfg.RootCAs != nil {
		return nil, errors.New("new service client: RootCAs cannot be combined with HTTPClient; set the roots on that client's transport")
	}
	c := &Client{
		host:       cs.HostName,
		keyName:    cs.SharedAccessKeyName,
		key:        cs.SharedAccessKey,
		http:       cfg.HTTPClient,
		userAgent:  cfg.UserAgent,
		ttl:        cfg.TokenTTL,
		reqTimeout: cfg.RequestTimeout,
		now:        cfg.Now,
		log:        cfg.Logger,
	}
	if c.http == nil {
		n := cfg.MaxConns
		if n == 0 {
			n = DefaultMaxConns
		}
		c.http = newHTTPClient(cfg.RootCAs, n)
		c.ownsHTTP = true
	} else if skipsVerify(c.http) {
		return nil, errors.New("new service client: HTTPClient's transport skips TLS verification; hubflow only talks to a hub it has verified")
	}
	if c.userAgent == "" {
		c.userAgent = "hubflow/" + moduleVersion()
	}
	if c.ttl == 0 {
		c.ttl = DefaultTokenTTL
	}
	c.renewAt = min(tokenRenewMargin, c.ttl/2)
	if c.reqTimeout == 0 {
		c.reqTimeout = DefaultRequestTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// checkHost refuses host names that would change the URL's meaning; the
// connection string is operator input.
func checkHost(h string) error {
	if h == "" {
		return errors.New("connection string has no HostName")
	}
	if strings.ContainsAny(h, "/?#@\\ \t") || strings.Contains(h, "://") {
		return fmt.Errorf("HostName %q is not a host name (with an optional port)", h)
	}
	if _, err := url.Parse("https://" + h + "/"); err != nil {
		return fmt.Errorf("HostName %q is not a host name (with an optional port)", h)
	}
	return nil
}

func newHTTPClient(roots *x509.CertPool, maxConns int) *http.Client {
	dialer := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		// A redirect would carry the request elsewhere; the hub never
		// sends one, so it is reported as the answer it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func skipsVerify(hc *http.Client) bool {
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	tr, ok := rt.(*http.Transport)
	return ok && tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Host returns the hub host name (with port, when the connection string has
// one) the client talks to.
func (c *Client) Host() string { return c.host }

// Close releases the idle connections of the HTTP client New built. A
// caller-supplied HTTPClient is left alone. Calls made after Close still
// work and open new connections.
func (c *Client) Close() {
	if c.ownsHTTP {
		c.http.CloseIdleConnections()
	}
}

// token returns a cached SAS token, signing a new one when the cached one
// is within renewAt of its expiry.
func (c *Client) token() (string, error) {
	now := c.now()
	if t := c.tok.Load(); t != nil && t.expiry.Sub(now) > c.renewAt {
		return t.value, nil
	}
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if t := c.tok.Load(); t != nil && t.expiry.Sub(now) > c.renewAt {
		return t.value, nil
	}
	// Whole seconds, rounded up, as se is an integer.
	end := now.Add(c.ttl)
	sec := end.Unix()
	if end.Nanosecond() > 0 {
		sec++
	}
	expiry := time.Unix(sec, 0)
	v, err := iothub.NewServiceSAS(c.host, c.keyName, c.key, expiry)
	if err != nil {
		return "", err
	}
	c.tok.Store(&sasToken{value: v, expiry: expiry})
	c.log.Debug("signed service token", slog.String("host", c.host), slog.Time("expiry", expiry))
	return v, nil
}

// operation names a call in errors. It is formatted only when an error
// needs it, which keeps string building off the success path.
type operation struct {
	verb   string // "get twin", "invoke method", …
	method string // invoke only
	device string
	noID   bool // the call is about no single device
}

func (o operation) String() string {
	s := o.verb
	if o.verb == invokeVerb {
		s += " " + strconv.Quote(o.method) + " on device"
	}
	if !o.noID {
		s += " " + strconv.Quote(o.device)
	}
	return s
}

// request is one REST request.
type request struct {
	op      operation
	method  string
	path    string // unescaped
	rawPath string // escaped; RawPath keeps %2F in ids intact
	query   string // extra query parameters, without api-version
	body    []byte // nil: no body and no Content-Type
	ifMatch string // already quoted
	// Query paging headers.
	maxItems     string
	continuation string
	maxBody      int64
	timeout      time.Duration
}

// result is a successful (2xx) answer.
type result struct {
	header http.Header
	body   []byte
}

// do sends r and returns its 2xx answer; any other answer becomes an
// *iothub.Error with r.op as Op.
func (c *Client) do(ctx context.Context, r *request) (*result, error) {
	tok, err := c.token()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.op, err)
	}
	timeout := r.timeout
	if timeout == 0 {
		timeout = c.reqTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	q := "api-version=" + iothub.APIVersion
	if r.query != "" {
		q += "&" + r.query
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	// The URL is set directly rather than parsed from a string so that
	// RawPath (escaped device ids) is used exactly as built.
	req, err := http.NewRequestWithContext(ctx, r.method, "", body)
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", r.op, err)
	}
	req.URL = &url.URL{Scheme: "https", Host: c.host, Path: r.path, RawPath: r.rawPath, RawQuery: q}
	h := req.Header
	if r.body != nil {
		h["Content-Type"] = []string{contentTypeJSON}
	}
	if r.ifMatch != "" {
		h["If-Match"] = []string{r.ifMatch}
	}
	if r.maxItems != "" {
		h["X-Ms-Max-Item-Count"] = []string{r.maxItems}
	}
	if r.continuation != "" {
		h["X-Ms-Continuation"] = []string{r.continuation}
	}
	rid := uuid.NewString()
	h["Authorization"] = []string{tok}
	h["Request-Id"] = []string{rid}
	h["User-Agent"] = []string{c.userAgent}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil && parent.Err() == nil {
			return nil, fmt.Errorf("%s: no answer from the hub within %s: %w", r.op, timeout, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", r.op, err)
	}
	defer resp.Body.Close()

	limit := r.maxBody
	if limit == 0 {
		limit = maxResponseBody
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !ok {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", r.op, err)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.LogAttrs(ctx, slog.LevelDebug, "hub request",
			slog.String("method", r.method), slog.String("path", req.URL.EscapedPath()),
			slog.Int("status", resp.StatusCode), slog.String("request_id", rid),
			slog.Duration("took", time.Since(start)))
	}
	if !ok {
		if int64(len(data)) > limit {
			data = data[:limit]
		}
		e := iothub.ParseError(resp.StatusCode, resp.Header, data)
		e.Op = r.op.String()
		e.Message = c.redact(e.Message, tok)
		e.TrackingID = c.redact(e.TrackingID, tok)
		return nil, e
	}
	if int64(len(data)) > limit {
		// Drain nothing more: the connection is dropped with the body.
		return nil, fmt.Errorf("%s: %w: answer larger than %d bytes", r.op, ErrUnexpectedResponse, limit)
	}
	return &result{header: resp.Header, body: data}, nil
}

// redact removes the client's secrets from text the hub sent back; a hub
// echoing a header must not put a key into an error string.
func (c *Client) redact(s, tok string) string {
	for _, secret := range []string{tok, c.key} {
		if secret != "" && strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	if _, sig, ok := strings.Cut(tok, "sig="); ok {
		sig, _, _ = strings.Cut(sig, "&")
		plain, _ := url.QueryUnescape(sig)
		for _, v := range []string{sig, plain} {
			if v != "" && strings.Contains(s, v) {
				s = strings.ReplaceAll(s, v, "REDACTED")
			}
		}
	}
	return s
}

// decode unmarshals a 2xx body into v, reporting a shape mismatch as
// ErrUnexpectedResponse.
func decode(op operation, res *result, v any, what string) error {
	if err := json.Unmarshal(res.body, v); err != nil {
		return fmt.Errorf("%s: %w: body is not %s: %v", op, ErrUnexpectedResponse, what, err)
	}
	return nil
}

// marshal encodes v without HTML escaping, so queries and payloads with
// '<', '>' or '&' travel as written.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// MaxDeviceIDLength is the hub's limit on a device id.
const MaxDeviceIDLength = 128

func checkDeviceID(op operation, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s: %w: device id is empty", op, ErrInvalidInput)
	case len(id) > MaxDeviceIDLength:
		return fmt.Errorf("%s: %w: device id is %d bytes long, over the hub's %d", op, ErrInvalidInput, len(id), MaxDeviceIDLength)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s: %w: device id contains a control character", op, ErrInvalidInput)
		}
	}
	return nil
}

// ifMatch quotes an etag for If-Match: "" means any version ("*"), and an
// etag that is already quoted is kept as is.
func ifMatch(etag string) string {
	switch {
	case etag == "" || etag == "*":
		return `"*"`
	case len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"':
		return etag
	case strings.HasPrefix(etag, `W/"`) && strings.HasSuffix(etag, `"`):
		return etag
	}
	return `"` + etag + `"`
}

// idPath returns the unescaped and escaped forms of prefix/{id}{suffix}.
func idPath(prefix, id, suffix string) (path, raw string) {
	return prefix + id + suffix, prefix + url.PathEscape(id) + suffix
}
