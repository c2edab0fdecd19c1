// Package textdiff compares texts line by line (Myers' O(ND) algorithm)
// and writes the result as a unified diff, for the versions of an
// application's compose file.
package textdiff
