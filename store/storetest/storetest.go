package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/store"
)

// Backend is one database a store test runs against.
type Backend struct {
	Name string
	Open func(t *testing.T) *store.Store
}

// Backends lists SQLite, and MariaDB when BERTH_TEST_MYSQL_DSN is set.
func Backends(mysqlDSN string) []Backend {
	bs := []Backend{{Name: "sqlite", Open: func(t *testing.T) *store.Store {
		t.Helper()
		return open(t, "sqlite", filepath.Join(t.TempDir(), "berth.db"), nil)
	}}}
	if mysqlDSN != "" {
		bs = append(bs, Backend{Name: "mariadb", Open: func(t *testing.T) *store.Store {
			t.Helper()
			dsn, drop, err := FreshMySQL(mysqlDSN, "berth_t"+RandHex(4))
			require.NoError(t, err)
			return open(t, "mysql", dsn, drop)
		}})
	}
	return bs
}

func open(t *testing.T, driver, dsn string, drop func() error) *store.Store {
	t.Helper()
	st, err := store.Open(driver, dsn)
	require.NoError(t, err)
	require.NoError(t, st.Migrate(context.Background()))
	t.Cleanup(func() {
		_ = st.Close()
		if drop != nil {
			_ = drop()
		}
	})
	return st
}

// RandHex returns n random bytes as hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var dbNameRE = regexp.MustCompile(`^[a-z0-9_]{1,60}$`)

// FreshMySQL creates database name on the server of dsn and returns a DSN
// for it, with a function that drops it.
func FreshMySQL(dsn, name string) (string, func() error, error) {
	if !dbNameRE.MatchString(name) {
		return "", nil, fmt.Errorf("database name %q is not allowed", name)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", nil, err
	}
	cfg.ParseTime = true
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		return "", nil, err
	}
	// The name is checked against a strict pattern above; identifiers cannot be bound as parameters.
	if _, err := db.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	cfg.DBName = name
	drop := func() error {
		defer db.Close()
		_, err := db.Exec("DROP DATABASE IF EXISTS `" + name + "`")
		return err
	}
	return cfg.FormatDSN(), drop, nil
}

// DropStale drops databases left by killed test runs (prefix berth_t / berth_e2e).
func DropStale(dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query("SHOW DATABASES")
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil && strings.HasPrefix(n, "berth_") && n != "berth_test" && dbNameRE.MatchString(n) {
			names = append(names, n)
		}
	}
	rows.Close()
	for _, n := range names {
		if _, err := db.Exec("DROP DATABASE IF EXISTS `" + n + "`"); err != nil {
			return err
		}
	}
	return nil
}
