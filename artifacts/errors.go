package artifacts

import (
	"errors"
	"fmt"
)

// Sentinel errors, for errors.Is.
var (
	// ErrInvalid: the package (or a name or digest given for it) is malformed
	// or hostile. The concrete error is an *InvalidPackageError.
	ErrInvalid = errors.New("artifacts: invalid package")
	// ErrTooLarge: the upload is larger than Store.MaxBytes. The concrete
	// error is a *TooLargeError.
	ErrTooLarge = errors.New("artifacts: package too large")
	// ErrChecksum: the upload's sha256 differs from the one expected. The
	// concrete error is a *ChecksumError.
	ErrChecksum = errors.New("artifacts: checksum mismatch")
	// ErrNotFound: no package with that sha256 is stored.
	ErrNotFound = errors.New("artifacts: package not found")
)

// InvalidPackageError says why a package was refused. Reason names the
// offending entry where there is one, e.g. `entry "../evil": path has a ".."
// element`.
type InvalidPackageError struct {
	Reason string
}

func (e *InvalidPackageError) Error() string { return "artifacts: invalid package: " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidPackageError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &InvalidPackageError{Reason: fmt.Sprintf(format, args...)}
}

// TooLargeError reports an upload of more than Limit bytes. Put stops reading
// after Limit+1 bytes.
type TooLargeError struct {
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("artifacts: package too large: more than %d bytes", e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// ChecksumError reports an upload whose sha256 (Got) is not the one the
// caller expected (Want).
type ChecksumError struct {
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("artifacts: checksum mismatch: want sha256 %s, got %s", e.Want, e.Got)
}

// Is makes errors.Is(err, ErrChecksum) true.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// readError marks a failure to read the package file itself (an I/O error of
// the store, not a fault of the package), so validation does not report it as
// ErrInvalid.
type readError struct{ err error }

func (e *readError) Error() string { return "artifacts: reading package: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }
