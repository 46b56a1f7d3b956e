// Package hubadapter lets the runner drive a hub through the service REST
// client: it turns a *service.Client into a runner.Hub.
//
// It owns the mapping of the runner's calls onto the client's (method
// calls, desired-property patches, twin reads, twin queries read page by
// page), the decoding of query items into twins, and the marking of the
// client's input errors as runner.ErrRefused so that the runner fails such
// a step instead of retrying it. The wire protocol, timeouts and secrets stay
// with iothub/service; what to retry, and when, stays with the runner.
package hubadapter
