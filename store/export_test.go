package store

// DummyHashCost is the bcrypt cost of the hash unknown names are checked
// against, for the test that it matches real hashes.
func DummyHashCost() int {
	c, _ := bcryptCostOf(dummyHash())
	return c
}
