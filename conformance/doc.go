// Package conformance checks hubflow's emulator against the official Azure
// IoT SDKs for Node.js: Microsoft's device-management tutorial flows (reboot,
// firmware update, maintenance-window policy, twin query) run unchanged on
// azure-iot-device, azure-iot-device-mqtt and azure-iothub, pinned in
// node/package-lock.json.
//
// The tests install the npm packages themselves. They skip, saying why, only
// where node or npm is absent; everywhere else a failure fails the build.
package conformance
