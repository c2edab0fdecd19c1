// Package codec encrypts every payload berth writes to Temporal (workflow
// inputs and results, activity inputs and results, signals, queries,
// updates, memos) with AES-256-GCM, so a Temporal database or history export
// holds no request, environment value or secret in plain text.
//
// It is a Temporal PayloadCodec: the SDK's codec data converter calls it on
// the way to and from the server, and Handler serves the same codec over
// Temporal's remote-codec HTTP protocol so operators who hold the key can
// read histories in the Temporal UI and CLI. Payloads that were written
// before encryption was turned on pass through Decode unchanged, so older
// histories still replay.
//
// Keys live in a file (or the environment) on the machines that run berth,
// never in the database. A key file may hold several keys, one per line: the
// first encrypts, all decrypt, which is how a key is rotated.
package codec
