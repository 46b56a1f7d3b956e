// Package device is the device side of an Azure IoT Hub conversation: one
// MQTT 3.1.1 connection over TLS per device identity, authenticated with a
// shared access signature, that answers direct methods, reads the device's
// twin, patches its reported properties and receives desired-property
// notifications.
//
// A Client owns its connection for its whole life: it renews the token
// before it expires (by reconnecting with a fresh one, as the official SDKs
// do), reconnects with exponential backoff and jitter after a dropped
// connection, subscribes again on every connection rather than trusting the
// hub's persistent session, and re-reads the twin after a reconnect so that
// a desired change made while it was away is still delivered. It is built to
// run by the thousand in one process (the simulated fleet): while idle it
// adds no goroutines or tickers of its own to those of the MQTT library.
//
// Every subscription and every PUBLISH uses QoS 0, as the Node SDK does:
// each twin request and method call is confirmed by its own answer topic, so
// a PUBACK would add a packet and nothing else, and QoS 0 leaves the MQTT
// library's session store empty. Requests in flight when a connection drops
// fail at once (ErrConnectionLost) rather than being resent.
//
// Connection strings and tokens, topic names and the hub's error model come
// from package iothub; the back-end side (REST) is iothub/service; the hub
// that answers both in tests and demos is package emulator.
package device
