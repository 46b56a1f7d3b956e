package iothub

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MQTT topic filters a device subscribes to.
const (
	TopicMethodsFilter      = "$iothub/methods/POST/#"
	TopicTwinResponseFilter = "$iothub/twin/res/#"
	TopicDesiredFilter      = "$iothub/twin/PATCH/properties/desired/#"
)

const (
	methodPostPrefix  = "$iothub/methods/POST/"
	methodResPrefix   = "$iothub/methods/res/"
	twinResPrefix     = "$iothub/twin/res/"
	twinGetPrefix     = "$iothub/twin/GET/"
	twinReportedPrefx = "$iothub/twin/PATCH/properties/reported/"
	desiredPrefix     = "$iothub/twin/PATCH/properties/desired/"
)

// ErrTopic is wrapped by every topic parse error.
var ErrTopic = errors.New("unexpected topic")

// MethodRequestTopic is the topic on which the hub delivers a method call.
func MethodRequestTopic(name, rid string) string {
	return methodPostPrefix + name + "/?$rid=" + rid
}

// MethodResponseTopic is the topic on which a device answers a method call.
func MethodResponseTopic(status int, rid string) string {
	return methodResPrefix + strconv.Itoa(status) + "/?$rid=" + rid
}

// TwinGetTopic is the topic a device publishes to request its twin.
func TwinGetTopic(rid string) string { return twinGetPrefix + "?$rid=" + rid }

// TwinReportedTopic is the topic a device publishes a reported patch to.
func TwinReportedTopic(rid string) string { return twinReportedPrefx + "?$rid=" + rid }

// TwinResponseTopic is the topic of the hub's answer to a twin GET or PATCH;
// version (the new reported $version) is omitted when 0.
func TwinResponseTopic(status int, rid string, version int64) string {
	t := twinResPrefix + strconv.Itoa(status) + "/?$rid=" + rid
	if version > 0 {
		t += "&$version=" + strconv.FormatInt(version, 10)
	}
	return t
}

// DesiredPatchTopic is the topic of a desired-properties notification.
func DesiredPatchTopic(version int64) string {
	return desiredPrefix + "?$version=" + strconv.FormatInt(version, 10)
}

// splitQuery separates "path/?a=b" (or "path?a=b") into the path without its
// trailing slash and the parsed query.
func splitQuery(rest string) (string, url.Values, error) {
	p, q, _ := strings.Cut(rest, "?")
	vals, err := url.ParseQuery(q)
	if err != nil {
		return "", nil, fmt.Errorf("%w: bad property bag", ErrTopic)
	}
	return strings.TrimSuffix(p, "/"), vals, nil
}

// ParseMethodRequestTopic returns the method name and request id of a
// method-call topic. The slash before '?' is optional, as SDKs accept both.
func ParseMethodRequestTopic(topic string) (name, rid string, err error) {
	rest, ok := strings.CutPrefix(topic, methodPostPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not a method request", ErrTopic, topic)
	}
	name, q, err := splitQuery(rest)
	if err != nil {
		return "", "", err
	}
	if name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%w: bad method name in %q", ErrTopic, topic)
	}
	rid = q.Get("$rid")
	if rid == "" {
		return "", "", fmt.Errorf("%w: no $rid in %q", ErrTopic, topic)
	}
	return name, rid, nil
}

// ParseMethodResponseTopic returns the status and request id of a method
// response topic.
func ParseMethodResponseTopic(topic string) (status int, rid string, err error) {
	rest, ok := strings.CutPrefix(topic, methodResPrefix)
	if !ok {
		return 0, "", fmt.Errorf("%w: %q is not a method response", ErrTopic, topic)
	}
	return parseStatusRid(rest, topic)
}

func parseStatusRid(rest, topic string) (int, string, error) {
	st, q, err := splitQuery(rest)
	if err != nil {
		return 0, "", err
	}
	status, err := strconv.Atoi(st)
	if err != nil || status < 0 || status > 999999 {
		return 0, "", fmt.Errorf("%w: bad status in %q", ErrTopic, topic)
	}
	rid := q.Get("$rid")
	if rid == "" {
		return 0, "", fmt.Errorf("%w: no $rid in %q", ErrTopic, topic)
	}
	return status, rid, nil
}

// ParseTwinResponseTopic returns the status, request id and (for a reported
// patch) the new version of a twin response topic.
func ParseTwinResponseTopic(topic string) (status int, rid string, version int64, err error) {
	rest, ok := strings.CutPrefix(topic, twinResPrefix)
	if !ok {
		return 0, "", 0, fmt.Errorf("%w: %q is not a twin response", ErrTopic, topic)
	}
	status, rid, err = parseStatusRid(rest, topic)
	if err != nil {
		return 0, "", 0, err
	}
	_, q, _ := splitQuery(rest)
	if v := q.Get("$version"); v != "" {
		version, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, "", 0, fmt.Errorf("%w: bad $version in %q", ErrTopic, topic)
		}
	}
	return status, rid, version, nil
}

// ParseDesiredPatchTopic returns the version of a desired notification.
func ParseDesiredPatchTopic(topic string) (int64, error) {
	rest, ok := strings.CutPrefix(topic, desiredPrefix)
	if !ok {
		return 0, fmt.Errorf("%w: %q is not a desired notification", ErrTopic, topic)
	}
	_, q, err := splitQuery(rest)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(q.Get("$version"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad $version in %q", ErrTopic, topic)
	}
	return v, nil
}

// DeviceTopicKind says what a device-to-hub PUBLISH is.
type DeviceTopicKind int

// Kinds of device-to-hub topics.
const (
	TopicUnknown DeviceTopicKind = iota
	TopicTwinGet
	TopicTwinReported
	TopicMethodResponse
	TopicTelemetry
)

// DeviceTopic is a parsed device-to-hub topic.
type DeviceTopic struct {
	Kind   DeviceTopicKind
	RID    string // twin GET/PATCH and method responses
	Status int    // method responses
}

// ParseDeviceTopic classifies a topic a device published on. deviceID is the
// publisher's identity: telemetry must be on its own devices/<id>/ tree.
func ParseDeviceTopic(topic, deviceID string) (DeviceTopic, error) {
	switch {
	case strings.HasPrefix(topic, twinGetPrefix):
		_, q, err := splitQuery(strings.TrimPrefix(topic, twinGetPrefix))
		if err != nil || q.Get("$rid") == "" {
			return DeviceTopic{}, fmt.Errorf("%w: twin GET without $rid", ErrTopic)
		}
		return DeviceTopic{Kind: TopicTwinGet, RID: q.Get("$rid")}, nil
	case strings.HasPrefix(topic, twinReportedPrefx):
		_, q, err := splitQuery(strings.TrimPrefix(topic, twinReportedPrefx))
		if err != nil || q.Get("$rid") == "" {
			return DeviceTopic{}, fmt.Errorf("%w: reported PATCH without $rid", ErrTopic)
		}
		return DeviceTopic{Kind: TopicTwinReported, RID: q.Get("$rid")}, nil
	case strings.HasPrefix(topic, methodResPrefix):
		status, rid, err := ParseMethodResponseTopic(topic)
		if err != nil {
			return DeviceTopic{}, err
		}
		return DeviceTopic{Kind: TopicMethodResponse, RID: rid, Status: status}, nil
	case deviceID != "" && strings.HasPrefix(topic, "devices/"+deviceID+"/messages/events/"):
		return DeviceTopic{Kind: TopicTelemetry}, nil
	}
	return DeviceTopic{}, fmt.Errorf("%w: %q", ErrTopic, topic)
}

// MQTTUsername is the CONNECT username for a device (or module) on host.
func MQTTUsername(host, deviceID, moduleID string) string {
	id := deviceID
	if moduleID != "" {
		id += "/" + moduleID
	}
	return host + "/" + id + "/?api-version=" + APIVersion
}

// ParseMQTTUsername splits a CONNECT username into the host and the client
// identity. It accepts "host/id/?api-version=…", the form without '?', and
// "host/id/module/?…"; whatever follows the identity is ignored.
func ParseMQTTUsername(u string) (host, deviceID, moduleID string, err error) {
	path, _, _ := strings.Cut(u, "?")
	parts := strings.Split(path, "/")
	// Drop a trailing "api-version=…" segment (the form without '?') and empties.
	var segs []string
	for _, p := range parts {
		if p == "" || strings.HasPrefix(p, "api-version=") {
			continue
		}
		segs = append(segs, p)
	}
	switch len(segs) {
	case 2:
		return segs[0], segs[1], "", nil
	case 3:
		return segs[0], segs[1], segs[2], nil
	}
	return "", "", "", fmt.Errorf("%w: username is not <host>/<deviceId>/?api-version=…", ErrTopic)
}
