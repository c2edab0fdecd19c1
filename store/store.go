package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/glebarez/sqlite"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned (wrapped, with what was looked for) when a record
// does not exist.
var ErrNotFound error = &berth.Error{Code: berth.ENotFound, Message: "not found"}

// ConflictError says a record clashes with an existing one; Existing, when
// set, is the record that won (for example the active run of an application).
type ConflictError struct {
	Msg      string
	Existing any
}

func (e *ConflictError) Error() string { return e.Msg }

// Unwrap gives the conflict its domain code.
func (e *ConflictError) Unwrap() error { return &berth.Error{Code: berth.EConflict, Message: e.Msg} }

// Store is berth's record keeper.
type Store struct {
	db     *gorm.DB
	driver string
}

// Open connects to the database. driver is "sqlite" (dsn is a file path) or
// "mysql" (dsn is a go-sql-driver DSN; parseTime=true is added when missing).
func Open(driver, dsn string) (*Store, error) {
	cfg := &gorm.Config{Logger: logger.Default.LogMode(logger.Silent), TranslateError: true}
	var (
		db  *gorm.DB
		err error
	)
	switch driver {
	case "sqlite":
		// WAL and a busy timeout let readers run beside the single writer;
		// one open connection serialises writers so port allocation never races.
		db, err = gorm.Open(sqlite.Open(dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"), cfg)
		if err == nil {
			sqlDB, _ := db.DB()
			sqlDB.SetMaxOpenConns(1)
		}
	case "mysql":
		if !strings.Contains(dsn, "parseTime") {
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + "parseTime=true&loc=UTC"
		}
		db, err = gorm.Open(mysql.Open(dsn), cfg)
		if err == nil {
			sqlDB, _ := db.DB()
			sqlDB.SetMaxOpenConns(20)
			sqlDB.SetConnMaxLifetime(5 * time.Minute)
		}
	default:
		return nil, fmt.Errorf("unknown database driver %q (want sqlite or mysql)", driver)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", driver, err)
	}
	return &Store{db: db, driver: driver}, nil
}

// Migrate creates or updates the schema.
func (s *Store) Migrate(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	if err := db.AutoMigrate(allModels()...); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// A pool was once unique per service; it is now one per service and
	// region, and AutoMigrate adds indexes but never drops one.
	if m := db.Migrator(); m.HasIndex(&berth.LBPool{}, "idx_lb_pools_service_id") {
		if err := m.DropIndex(&berth.LBPool{}, "idx_lb_pools_service_id"); err != nil {
			return fmt.Errorf("migrate: drop the one-pool-per-service index: %w", err)
		}
	}
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// DB exposes the handle for tests and benchmarks that need raw queries.
func (s *Store) DB() *gorm.DB { return s.db }

func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "Duplicate entry")
}

func notFound(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

func now() time.Time { return time.Now().UTC() }

// Audit appends an audit event.
func (s *Store) Audit(ctx context.Context, ev AuditEvent) error {
	if ev.At.IsZero() {
		ev.At = now()
	}
	return s.db.WithContext(ctx).Create(&ev).Error
}

// AuditEvents lists the newest audit events first.
func (s *Store) AuditEvents(ctx context.Context, limit int) ([]AuditEvent, error) {
	var evs []AuditEvent
	err := s.db.WithContext(ctx).Order("id desc").Limit(limit).Find(&evs).Error
	return evs, err
}

// readCommitted makes a transaction read what others committed after it
// began. MariaDB's default, repeatable read, would let a plan that waited
// for a lock go on counting from the snapshot its first read took, and so
// promise capacity a plan committed meanwhile has already taken. SQLite has
// one writer at a time and needs nothing.
func (s *Store) readCommitted() *sql.TxOptions {
	if s.driver != "mysql" {
		return nil
	}
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}
