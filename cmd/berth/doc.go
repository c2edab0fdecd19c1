// Command berth is the one binary of berth. Subcommands: server (API + UI),
// worker (central and/or regional Temporal workers), dev (everything in one
// process: the embedded default) and migrate. All wiring lives here: the
// typed config is loaded once and the Temporal client is created once.
package main
