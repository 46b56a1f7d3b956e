// Package emulator is a local Azure IoT Hub: an HTTPS REST front end for
// back-end applications and an MQTT-over-TLS front end for devices, backed by
// an in-memory identity registry and device twins that can be persisted to a
// data directory.
//
// It owns the hub's behaviour as hubflow's protocol reference describes it:
// SAS authentication for policies and devices, registry and twin REST
// operations with etags and versions, direct-method routing to connected
// devices with the hub's timeouts and error codes, desired-property
// notifications, twin GET and reported PATCH over MQTT, persistent MQTT
// sessions, per-tier quotas and injectable faults (latency, drops,
// disconnects, 5xx and 429 storms). It also keeps witness logs (method
// invocations and reported patches) that tests compare with what a client
// believes happened.
//
// It leaves the query language to emulator/query, wire types, SAS and topic
// names to iothub, and simulated devices to the simulator. The MQTT broker is
// mochi-mqtt, driven through its hooks; every hub-to-device message is
// written to the one addressed client rather than routed.
package emulator
