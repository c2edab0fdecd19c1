// Package ticketstest is a ticket system in memory that speaks berth's HTTP
// ticket contract, for tests that read back the tickets berth opened,
// updated and resolved, and make the system fail on demand.
package ticketstest
