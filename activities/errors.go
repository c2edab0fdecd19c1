package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth/store"
)

// Application error types. The workflows stop retrying on them and the server
// maps them to HTTP status codes.
const (
	ErrInvalid     = "InvalidInput"     // the request can never succeed as given (400)
	ErrNotFound    = "NotFound"         // a record or object it names does not exist (404)
	ErrConflict    = "Conflict"         // it clashes with something that exists (409)
	ErrNoCapacity  = "NoCapacity"       // no host or port is free for it (409)
	ErrImage       = "ImageUnavailable" // an image is missing and cannot be pulled
	ErrUnhealthy   = "Unhealthy"        // an instance did not become healthy
	ErrHostRefused = "HostRefused"      // an engine refused the request outright
)

// NonRetryableTypes are the error types no retry can fix.
var NonRetryableTypes = []string{ErrInvalid, ErrNotFound, ErrConflict, ErrNoCapacity, ErrImage, ErrUnhealthy, ErrHostRefused}

func fail(kind, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), kind, nil)
}

// storeErr turns the store's typed errors into non-retryable ones so a
// workflow stops at once; other errors (the database is down) stay retryable.
func storeErr(err error) error {
	var conflict *store.ConflictError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNoCapacity):
		return fail(ErrNoCapacity, "%s", err.Error())
	case errors.Is(err, store.ErrNotFound):
		return fail(ErrNotFound, "%s", err.Error())
	case errors.As(err, &conflict):
		return fail(ErrConflict, "%s", err.Error())
	}
	return err
}
