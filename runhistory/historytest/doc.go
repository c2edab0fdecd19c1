// Package historytest holds what tests of Temporal-history reading share:
// a recorded-looking deploy history and a fake of the one WorkflowService
// call the reader makes. Test code only; nothing in berth's program imports it.
package historytest
