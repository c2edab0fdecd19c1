// Package cmdbtest is a CMDB in memory that speaks berth's HTTP CMDB
// contract, for tests that need a real HTTP receiver to read back what
// berth pushed, to drift on purpose, and to fail on demand.
package cmdbtest
