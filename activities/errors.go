package activities

import (
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
)

// fail returns a non-retryable application error whose type is the domain
// code: the workflows stop retrying on it and the server maps it to a status.
func fail(code berth.Code, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), string(code), nil)
}

// storeErr turns the store's and the drivers' domain errors (*berth.Error
// anywhere in the chain) into non-retryable ones, so a workflow stops at
// once; other errors (the database is down) stay retryable.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	if code := berth.ErrorCode(err); code != "" {
		return fail(code, "%s", err.Error())
	}
	return err
}
