// Package jobs owns hubflow's job files: the HCL schema and its staged
// decoding (variables first, then jobs), validation with source ranges, the
// variables and functions that per-device conditions may use, window and
// schedule arithmetic across time zones and daylight-saving changes,
// canonical formatting, and the hash of a job's normalized content.
//
// It leaves resolving target devices, executing steps, talking to a hub and
// storing history to the runner, iothub and state packages, and rendering
// diagnostics to cmd/hubflow: jobs returns hcl.Diagnostics and never turns
// them into text. It reads no clock and no process environment; callers pass
// times, device twins and HUBFLOW_VAR_* values in. Zone data is embedded
// (time/tzdata) so that a host without zoneinfo behaves the same.
//
// Job files may come from anyone who can reach validate or serve, so what
// one can cost is bounded. Before parsing, a file nested deeper than
// MaxNestingDepth levels, or chaining more than MaxOperatorChain operators,
// is refused with "Nesting too deep" or "Expression too long" at the line
// and column where it goes over, instead of overflowing the parser's
// stack. Each evaluation of an expression, at load and per device, may
// build at most MaxExpressionBytes of values and compute with numbers
// within MaxNumberExponent; going over gives "Expression too large" or
// "Number out of range" where it happened, instead of growing memory or
// time without bound.
package jobs
