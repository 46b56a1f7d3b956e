// Package service is hubflow's back-end client for an IoT hub's HTTPS REST
// API: direct-method invocation, twin reads and patches, paged twin queries
// and device-identity management, authenticated with a service policy's
// shared access signature.
//
// It owns the wire details of those calls (paths, headers, api-version, JSON
// bodies, paging), checks its input before anything is sent, keeps a pooled
// keep-alive HTTPS connection set sized for the caller's concurrency, and
// turns every answer that is not a success into an *iothub.Error.
//
// It does not retry, rate-limit or schedule: the runner decides what an
// error means (iothub.KindOf, iothub.IsRetryable) and how fast to go.
// Connection strings, tokens and the hub's error model come from iothub; the
// device side of the protocol is iothub/device, and the local hub that
// answers these calls is emulator.
package service
