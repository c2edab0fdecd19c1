// Package runhistory tells a run's Temporal workflow history in berth's
// words: which activity ran for which instance on which host, how long it
// took, why it failed and on which attempt, who sent a signal and what they
// decided. It reads the history a page at a time and hands out opaque page
// tokens that carry what is still open, so a later page can name the
// activity or timer it closes.
//
// It is a translator and nothing else: it talks to Temporal's history API
// and depends on the domain package for its error vocabulary, but never on
// gin (the server takes the requests, renders the pages and says what
// Temporal's errors mean for a run), the store (the caller knows which run a
// workflow belongs to and who may read it), or the activities and workflows
// whose events it describes: it reads their payloads as plain JSON and holds
// no type of theirs. TestDependsOnNoServerOrStore keeps it so.
package runhistory
