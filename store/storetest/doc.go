// Package storetest gives tests a fresh, migrated store on the databases
// berth supports: SQLite always, and MariaDB/MySQL when BERTH_TEST_MYSQL_DSN
// names a server. It is imported by tests only.
package storetest
