// Package workflows holds berth's durable workflows: deterministic code that
// decides which steps run, in which order, and how to undo them.
//
// Nothing here does I/O, reads the clock (workflow.Now only), starts
// goroutines (workflow.Go only) or ranges over maps: workflowcheck enforces
// it in lint, and the histories in testdata/histories are replayed on every
// change. Once a workflow has shipped, change it only behind
// workflow.GetVersion. One file per workflow holds its input, result, signal
// and query names and its id helper.
package workflows
