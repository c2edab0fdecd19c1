// Package compose turns a user's compose file into a validated Spec.
//
// Everything here is a pure function of the bytes handed in: no file is read,
// no environment variable is consulted and Docker is never called. The compose
// file comes from a user we do not trust and is parsed on the server, so
// anything that would let it reach the server's filesystem, environment or
// Docker daemon (include, extends with a file, env_file, bind mounts outside
// the allowed roots, the Docker socket, host namespaces, ...) is refused here,
// before any workflow acts on it. Keeping this free of I/O also makes the
// result deterministic, which workflow code relies on: the same body always
// yields the same Spec and the same Hash.
package compose
