// Package simulator runs a fleet of simulated IoT devices against a hub (the
// emulator, or Azure IoT Hub with a registry-write policy).
//
// It owns the fleet file (HCL groups of devices with their ID pattern, tags,
// initial reported properties and behaviours), the deterministic draw of each
// device's traits from a seed, the registration of missing devices and their
// tags through the service API, and the devices' behaviour once connected:
// they answer rebootDevice and firmwareUpdate as Microsoft's device-management
// tutorials do, report progress in their reported properties, acknowledge a
// maintenance-window policy written to their desired properties, and can be
// offline, flaky or slow to answer.
//
// It leaves the wire to iothub/service (registration, tags) and iothub/device
// (one MQTT connection per device), the hub itself to the emulator, and what
// to ask of the devices to the runner and the job files. Rendering of fleet
// file diagnostics belongs to cmd/hubflow.
//
// Devices keep no goroutines or tickers of their own while idle: a method
// call, a desired-property change or a flaky device's next disconnect (one
// timer, flaky devices only) is what starts work, so a single process can
// hold tens of thousands of them.
package simulator
