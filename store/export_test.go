package store

import "golang.org/x/crypto/bcrypt"

// DummyHashCost is the bcrypt cost of the hash unknown names are checked
// against, for the test that it matches real hashes.
func DummyHashCost() int {
	c, _ := bcrypt.Cost(dummyHash())
	return c
}
