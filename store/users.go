package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// User is a person or a machine account that signs in or bears tokens.
type User struct {
	ID           uint      `gorm:"primaryKey" json:"id"`
	Name         string    `gorm:"size:64;uniqueIndex" json:"name"`
	PasswordHash string    `gorm:"size:100" json:"-"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"createdAt"`
}

// RoleBinding grants a role on a tenant; TenantID 0 grants it platform-wide.
type RoleBinding struct {
	ID        uint       `gorm:"primaryKey" json:"-"`
	UserID    uint       `gorm:"uniqueIndex:ux_role_user_tenant_role" json:"userId"`
	TenantID  uint       `gorm:"uniqueIndex:ux_role_user_tenant_role" json:"tenantId"`
	Role      berth.Role `gorm:"size:32;uniqueIndex:ux_role_user_tenant_role" json:"role"`
	CreatedAt time.Time  `json:"createdAt"`
}

// APIToken is a bearer credential for machines. Only the SHA-256 of its
// secret is kept: a leaked database does not leak usable tokens, and the
// secret's entropy (32 random bytes) makes a slow hash unnecessary.
type APIToken struct {
	ID         uint       `gorm:"primaryKey" json:"id"`
	UserID     uint       `gorm:"index" json:"userId"`
	Name       string     `gorm:"size:64" json:"name"`
	Hash       string     `gorm:"size:64;uniqueIndex" json:"-"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

// Session is a signed-in browser. ID is the SHA-256 of the cookie's secret,
// for the same reason as APIToken.Hash.
type Session struct {
	ID        string    `gorm:"primaryKey;size:64" json:"-"`
	UserID    uint      `gorm:"index" json:"userId"`
	CSRF      string    `gorm:"size:64" json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `gorm:"index" json:"expiresAt"`
}

// ErrBadCredentials hides whether the name or the password was wrong.
var ErrBadCredentials = errors.New("unknown user or wrong password")

// bcryptCost is bcrypt's default; tests may lower it to stay fast.
var bcryptCost = bcrypt.DefaultCost

// SetBcryptCostForTests lowers the hashing cost; production never calls it.
func SetBcryptCostForTests(c int) { bcryptCost = c }

// HashSecret is how token and session secrets are stored and looked up.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns 32 random bytes as hex.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// CreateUser adds a user with a bcrypt-hashed password.
func (s *Store) CreateUser(ctx context.Context, name, password string) (*User, error) {
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return nil, err
	}
	u := &User{Name: name, PasswordHash: string(h)}
	if err := s.db.WithContext(ctx).Create(u).Error; err != nil {
		if isDuplicate(err) {
			return nil, &ConflictError{Msg: fmt.Sprintf("user %q already exists", name)}
		}
		return nil, err
	}
	return u, nil
}

// UserByName returns a user.
func (s *Store) UserByName(ctx context.Context, name string) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).Where("name = ?", name).First(&u).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("user %q", name))
	}
	return &u, nil
}

// Users lists users by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	var us []User
	return us, s.db.WithContext(ctx).Order("name").Find(&us).Error
}

// dummy keeps a login for an unknown name as slow as one for a known name,
// so timing does not tell which names exist: its hash has the cost real
// hashes are made with (and is made again if tests change that cost).
var dummy struct {
	sync.Mutex
	cost int
	hash []byte
}

func dummyHash() []byte {
	dummy.Lock()
	defer dummy.Unlock()
	if dummy.hash == nil || dummy.cost != bcryptCost {
		dummy.hash, _ = bcrypt.GenerateFromPassword([]byte("berth-no-such-user"), bcryptCost)
		dummy.cost = bcryptCost
	}
	return dummy.hash
}

// CheckPassword returns the user when name and password match an enabled user.
func (s *Store) CheckPassword(ctx context.Context, name, password string) (*User, error) {
	u, err := s.UserByName(ctx, name)
	if errors.Is(err, ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil || u.Disabled {
		return nil, ErrBadCredentials
	}
	return u, nil
}

// GrantRole binds a role on a tenant (0: platform-wide). Granting twice is harmless.
func (s *Store) GrantRole(ctx context.Context, userID, tenantID uint, role berth.Role) error {
	if !berth.IsRole(string(role)) {
		return &InvalidError{Msg: fmt.Sprintf("role %q is not one of developer, approver, release-manager, admin", role)}
	}
	err := s.db.WithContext(ctx).Create(&RoleBinding{UserID: userID, TenantID: tenantID, Role: role}).Error
	if isDuplicate(err) {
		return nil
	}
	return err
}

// RoleBindings returns a user's roles.
func (s *Store) RoleBindings(ctx context.Context, userID uint) ([]RoleBinding, error) {
	var rbs []RoleBinding
	return rbs, s.db.WithContext(ctx).Where("user_id = ?", userID).Order("tenant_id, role").Find(&rbs).Error
}

// CreateToken makes an API token for a user and returns its secret, which
// is not kept and so can be shown only this once. ttl 0 never expires.
func (s *Store) CreateToken(ctx context.Context, userID uint, name string, ttl time.Duration) (string, *APIToken, error) {
	secret := "berth_" + NewSecret()
	t := &APIToken{UserID: userID, Name: name, Hash: HashSecret(secret)}
	if ttl > 0 {
		exp := now().Add(ttl)
		t.ExpiresAt = &exp
	}
	if err := s.db.WithContext(ctx).Create(t).Error; err != nil {
		return "", nil, err
	}
	return secret, t, nil
}

// EnsureToken records a secret chosen outside berth (the bootstrap
// BERTH_API_TOKEN) as a token of a user, and revokes any earlier token of
// that user with the same name, so a changed secret retires the old one.
func (s *Store) EnsureToken(ctx context.Context, userID uint, name, secret string) error {
	h := HashSecret(secret)
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t := now()
		if err := tx.Model(&APIToken{}).Where("user_id = ? AND name = ? AND hash <> ? AND revoked_at IS NULL", userID, name, h).
			Update("revoked_at", &t).Error; err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&APIToken{}).Where("hash = ?", h).Count(&n).Error; err != nil || n > 0 {
			return err
		}
		return tx.Create(&APIToken{UserID: userID, Name: name, Hash: h}).Error
	})
}

// Tokens lists a user's tokens, newest first.
func (s *Store) Tokens(ctx context.Context, userID uint) ([]APIToken, error) {
	var ts []APIToken
	return ts, s.db.WithContext(ctx).Where("user_id = ?", userID).Order("id desc").Find(&ts).Error
}

// Token returns one token by id.
func (s *Store) Token(ctx context.Context, id uint) (*APIToken, error) {
	var t APIToken
	if err := s.db.WithContext(ctx).First(&t, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("token %d", id))
	}
	return &t, nil
}

// RevokeToken revokes a token; revoking twice keeps the first time.
func (s *Store) RevokeToken(ctx context.Context, id uint) error {
	t := now()
	return s.db.WithContext(ctx).Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", &t).Error
}

// ErrCredentialExpired says a token or session was valid once and is no longer.
var ErrCredentialExpired = errors.New("credential expired or revoked")

// lastUsedEvery bounds the writes that keep LastUsedAt: one a minute per
// token is enough to tell a dead token from a live one.
const lastUsedEvery = time.Minute

// UserByToken resolves a bearer secret to its user and token.
func (s *Store) UserByToken(ctx context.Context, secret string) (*User, *APIToken, error) {
	var t APIToken
	if err := s.db.WithContext(ctx).Where("hash = ?", HashSecret(secret)).First(&t).Error; err != nil {
		return nil, nil, notFound(err, "token")
	}
	n := now()
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !n.Before(*t.ExpiresAt)) {
		return nil, &t, ErrCredentialExpired
	}
	var u User
	if err := s.db.WithContext(ctx).First(&u, t.UserID).Error; err != nil {
		return nil, nil, notFound(err, "token's user")
	}
	if u.Disabled {
		return nil, &t, ErrCredentialExpired
	}
	if t.LastUsedAt == nil || n.Sub(*t.LastUsedAt) > lastUsedEvery {
		t.LastUsedAt = &n
		// Best effort: a failed bookkeeping write must not refuse a valid token.
		_ = s.db.WithContext(ctx).Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", &n).Error
	}
	return &u, &t, nil
}

// CreateSession signs a user in; it returns the cookie's secret and the session.
func (s *Store) CreateSession(ctx context.Context, userID uint, ttl time.Duration) (string, *Session, error) {
	secret := NewSecret()
	ses := &Session{ID: HashSecret(secret), UserID: userID, CSRF: NewSecret(), ExpiresAt: now().Add(ttl)}
	if err := s.db.WithContext(ctx).Create(ses).Error; err != nil {
		return "", nil, err
	}
	// Sweep expired sessions now and then rather than with a job of its own.
	_ = s.db.WithContext(ctx).Where("expires_at < ?", now()).Delete(&Session{}).Error
	return secret, ses, nil
}

// UserBySession resolves a session cookie's secret to its user and session.
func (s *Store) UserBySession(ctx context.Context, secret string) (*User, *Session, error) {
	// One round trip for both: every signed-in request asks this.
	var row struct {
		Session `gorm:"embedded"`
		User    User `gorm:"embedded;embeddedPrefix:u_"`
	}
	err := s.db.WithContext(ctx).Table("sessions").Select("sessions.*, "+userColumns("u_")).
		Joins("JOIN users ON users.id = sessions.user_id").Where("sessions.id = ?", HashSecret(secret)).Take(&row).Error
	if err != nil {
		return nil, nil, notFound(err, "session")
	}
	ses, u := row.Session, row.User
	if !now().Before(ses.ExpiresAt) {
		return nil, nil, ErrCredentialExpired
	}
	if u.Disabled {
		return nil, nil, ErrCredentialExpired
	}
	return &u, &ses, nil
}

// userColumns selects the users row's columns under prefix, for a join
// that reads a user beside another row.
func userColumns(prefix string) string {
	cols := []string{"id", "name", "password_hash", "disabled", "created_at"}
	for i, c := range cols {
		cols[i] = "users." + c + " AS " + prefix + c
	}
	return strings.Join(cols, ", ")
}

// DeleteSession signs a browser out.
func (s *Store) DeleteSession(ctx context.Context, secret string) error {
	return s.db.WithContext(ctx).Where("id = ?", HashSecret(secret)).Delete(&Session{}).Error
}

// EnsureAdmin makes the bootstrap admin on first start, with the given
// password, or a random one when it is empty. It reports the password it set
// (empty when the admin already existed) so the caller can show it once.
func (s *Store) EnsureAdmin(ctx context.Context, name, password string) (*User, string, error) {
	u, err := s.UserByName(ctx, name)
	if err == nil {
		return u, "", s.GrantRole(ctx, u.ID, 0, berth.RoleAdmin)
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, "", err
	}
	if password == "" {
		password = NewSecret()[:24]
	}
	u, err = s.CreateUser(ctx, name, password)
	var ce *ConflictError
	if errors.As(err, &ce) {
		// Another process (server beside dev, or a second replica) made it first.
		u, err = s.UserByName(ctx, name)
		password = ""
	}
	if err != nil {
		return nil, "", err
	}
	return u, password, s.GrantRole(ctx, u.ID, 0, berth.RoleAdmin)
}

// InvalidError says a request breaks a rule about its own content (a short
// password, an unknown role, a missing comment); the API answers 400.
type InvalidError struct {
	Msg string
	// Code, when set, is the error code the API answers with instead of
	// bad_request, so a form can tie the message to its field.
	Code string
}

func (e *InvalidError) Error() string { return e.Msg }

// Unwrap gives the error its domain code.
func (e *InvalidError) Unwrap() error {
	return &berth.Error{Code: berth.EInvalid, Message: e.Msg, Reason: e.Code}
}

// DeniedError says the caller may not do this, with the reason to show; the
// API answers 403.
type DeniedError struct{ Msg string }

func (e *DeniedError) Error() string { return e.Msg }

// Unwrap gives the error its domain code.
func (e *DeniedError) Unwrap() error { return &berth.Error{Code: berth.EForbidden, Message: e.Msg} }

// checkPassword is the one rule for passwords.
func checkPassword(password string) error {
	if len(password) < 8 {
		return &InvalidError{Msg: "password must be at least 8 characters"}
	}
	if len(password) > 72 {
		return &InvalidError{Msg: "password must be at most 72 bytes (bcrypt's limit)"}
	}
	return nil
}

// SetUserDisabled disables or enables a user. Disabling also revokes every
// token and ends every session of theirs at once, so nothing they hold keeps
// working, even after they are enabled again.
func (s *Store) SetUserDisabled(ctx context.Context, userID uint, disabled bool) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ?", userID).Update("disabled", disabled)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Model(&User{}).Where("id = ?", userID).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("user %d: %w", userID, ErrNotFound)
			}
		}
		if !disabled {
			return nil
		}
		return endCredentials(tx, userID)
	})
}

// endCredentials revokes a user's tokens and deletes their sessions.
func endCredentials(tx *gorm.DB, userID uint) error {
	t := now()
	if err := tx.Model(&APIToken{}).Where("user_id = ? AND revoked_at IS NULL", userID).Update("revoked_at", &t).Error; err != nil {
		return err
	}
	return tx.Where("user_id = ?", userID).Delete(&Session{}).Error
}

// SetPassword sets a user's password and ends their sessions, so whoever
// knew the old one is signed out everywhere. Tokens are left alone: they
// are revoked one by one, or all at once by disabling the user.
func (s *Store) SetPassword(ctx context.Context, userID uint, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ?", userID).Update("password_hash", string(h))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("user %d: %w", userID, ErrNotFound)
		}
		return tx.Where("user_id = ?", userID).Delete(&Session{}).Error
	})
}

// RevokeRole removes a role binding; removing one that is not there is a
// not-found error, so a typo does not pass for success.
func (s *Store) RevokeRole(ctx context.Context, userID, tenantID uint, role berth.Role) error {
	res := s.db.WithContext(ctx).Where("user_id = ? AND tenant_id = ? AND role = ?", userID, tenantID, role).Delete(&RoleBinding{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("role %s of user %d on tenant %d: %w", role, userID, tenantID, ErrNotFound)
	}
	return nil
}
