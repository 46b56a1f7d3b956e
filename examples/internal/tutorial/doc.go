// Package tutorial holds what the tutorial apps under examples/ have in
// common, so that each app's main.go is left with the flow of its own
// tutorial step.
//
// It owns the settings every app reads the way the Azure IoT Hub tutorials
// do (a flag, else an environment variable, plus -ca for the emulator's CA),
// the checks that turn them into a device or service client, the apps' exit
// codes and error line, the timestamp format the devices report, and the two
// back-end steps both service apps take: calling a direct method and polling
// the device's twin until a change shows.
//
// What a method does on the device, which reported properties a back end
// waits for and what it prints about them stay in the apps. The protocol
// itself belongs to iothub/device and iothub/service.
package tutorial
