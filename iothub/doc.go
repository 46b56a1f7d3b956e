// Package iothub holds what both sides of an Azure IoT Hub conversation share:
// connection strings, shared access signatures, the hub's error model, the
// JSON shapes of twins, devices and method calls, and the MQTT topic names.
//
// It performs no I/O. The back-end REST client lives in iothub/service, the
// device MQTT client in iothub/device, and the local hub that answers both in
// emulator. The wire facts it encodes are those of the hub's public protocol.
package iothub
