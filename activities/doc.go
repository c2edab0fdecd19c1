// Package activities holds every side effect of berth's workflows: Docker
// engines (docker.go), berth's own records (store.go), and later load
// balancers, firewalls, the CMDB and the registry, one file per outside system.
//
// Activities are methods on structs that hold small interfaces, so each can be
// tested against the real system or a fake of that one interface. Every
// activity is idempotent: names and keys are derived from the run and the
// instance, so a retry after a crash finds its own earlier work. Bad input is
// reported with the typed, non-retryable errors of errors.go. Nothing here
// decides what to do next; that is the workflows' job.
package activities
