// Package statetest holds test helpers for code that records history in a
// state.Store: checks that run against the database file itself, such as
// AssertNoSecrets.
//
// It leaves the store's own behaviour to the state package's tests.
package statetest
