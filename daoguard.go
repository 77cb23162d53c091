// Package daoguard holds the domain of the daoguard gateway: the types every
// other package speaks (organisations, principals, accounts, assets, actions,
// decisions, approvals, audit entries), the action state machine, the error
// vocabulary, and the small interfaces that the adapters implement.
//
// It imports only the standard library. Implementations live in packages
// named after their technology (internal/sqlite, internal/postgres, ...) and
// only cmd/ wires them together.
package daoguard

// Version and Commit are set at build time with -ldflags.
var (
	Version = "dev"
	Commit  = "unknown"
)
