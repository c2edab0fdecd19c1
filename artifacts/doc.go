// Package artifacts stores the application packages of file-based releases
// (.war, .jar, .tar.gz/.tgz, .zip) and turns them into the tar stream that
// Docker's CopyToContainer unpacks into an instance's package folder
// (ContainerPath, /berth/package).
//
// A Store keeps packages content-addressed under its root:
//
//	root/staging/         uploads in progress (temporary files only)
//	root/sha256/<hex>      the package bytes, exactly as uploaded
//	root/sha256/<hex>.json a small sidecar describing them (Package)
//
// Put streams an upload into staging while hashing it, refuses it when it is
// larger than MaxBytes, does not match the expected checksum, or is not a
// well-formed package of the kind its file name announces, and only then
// renames it into place. Validation never extracts anything to disk: archives
// are read as streams, entry names must be relative and clean, only regular
// files and directories are allowed, and the decompressed bytes are counted
// as they are read (MaxUnpacked, MaxEntries), so archive bombs and lying
// headers are refused before they cost more than the limits. Beyond the
// first RatioGrace bytes, an entry or a whole archive may not unpack to
// more than MaxRatio bytes per compressed byte (100:1 by default): a real
// package compresses a few times, a bomb a thousand, and one under the size
// limit would otherwise still fill a host's disk. On any failure
// the temporary file is removed; nothing is written outside the root.
//
// TarForContainer re-reads a stored package through the same checks and
// writes a normalised tar stream: .war/.jar become one file named after the
// upload, .tar.gz/.zip are unpacked with sanitised modes (files 0644 or 0755,
// directories 0755), owner 0:0 and a fixed mtime, and a MarkerFile holding
// the package's sha256 is written last.
//
// Errors: ErrInvalid (*InvalidPackageError, with the reason naming the
// offending entry), ErrTooLarge (*TooLargeError), ErrChecksum
// (*ChecksumError) and ErrNotFound. None of them is helped by a retry; the
// activity that calls the Store should report them as non-retryable invalid
// input. Any other error (disk full, I/O) may be retried.
//
// A Store holds no mutable state and is safe for concurrent use, also by
// several processes sharing one root: every write goes to a unique temporary
// file and is published with an atomic rename.
package artifacts
