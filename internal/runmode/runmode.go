// Package runmode tells modules how the process runs them. The bankedge
// binary sets it before Caddy provisions anything; modules read it in
// Provision.
package runmode

// ValidateOnly is set for `bankedge validate`, which provisions the whole
// configuration without running it: modules must then write nothing and
// take no lock that a running gateway on the same files holds (the CA in
// storage, the replay journal).
var ValidateOnly bool
