package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sign-in throttling: at most loginMaxFailures failed sign-ins per user name
// and address within loginWindow; after that the pair is refused (429)
// until the oldest failure leaves the window, whether the password is right
// or not, so guessing gains nothing. A success clears the pair's count.
const (
	loginMaxFailures = 5
	// loginMaxAddrFailures caps one address across all user names, so
	// trying one password on many names (spraying) is held back too; it is
	// high enough for many people behind one NAT mistyping at once.
	loginMaxAddrFailures = 30
	loginWindow          = time.Minute
	// loginMaxKeys bounds the memory a flood of made-up names can take.
	loginMaxKeys = 100_000
)

// failureLog counts failed sign-ins by key. The server's store is one
// (store.Store), so every API replica sees the same count; memFailures
// keeps them in this process, for a server without a store.
type failureLog interface {
	// LoginFailures returns key's newest failures after since, at most
	// limit, oldest first.
	LoginFailures(ctx context.Context, key string, since time.Time, limit int) ([]time.Time, error)
	// AddLoginFailures counts a failure under each key and forgets every
	// failure from before expired.
	AddLoginFailures(ctx context.Context, at, expired time.Time, keys ...string) error
	ClearLoginFailures(ctx context.Context, key string) error
}

type loginLimiter struct {
	log failureLog
	mu  sync.Mutex
	// refused tallies, per address, the sign-ins refused while it was held
	// back, so a flood writes two audit rows (the first refusal and a
	// summary), not one per attempt. Per replica: it only shapes the audit.
	refused map[string]*refusalTally
	now     func() time.Time
}

type refusalTally struct {
	more  int // refusals after the first
	since time.Time
}

// newLoginLimiter counts in log, or in this process when log is nil.
func newLoginLimiter(log failureLog) *loginLimiter {
	if log == nil {
		log = &memFailures{fails: map[string][]time.Time{}}
	}
	return &loginLimiter{log: log, refused: map[string]*refusalTally{}, now: time.Now}
}

// refusedAttempt counts an attempt refused while addr is held back. first
// says it is the first since the hold began: the caller records that one.
func (l *loginLimiter) refusedAttempt(addr string) (first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.refused[addr]; ok {
		t.more++
		return false
	}
	if len(l.refused) >= loginMaxKeys {
		return false // a flood from more addresses than we count: keep memory bounded
	}
	l.refused[addr] = &refusalTally{since: l.now()}
	return true
}

// settle ends addr's tally once an attempt from it is let through again,
// returning how many refusals were not recorded one by one, and since when.
func (l *loginLimiter) settle(addr string) (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.refused[addr]
	if !ok {
		return 0, time.Time{}
	}
	delete(l.refused, addr)
	return t.more, t.since
}

// loginKey and addrKey are what failures are counted under: hashes, so the
// shared table holds neither names nor addresses. No user name holds a NUL,
// so an address's key cannot collide with a pair's.
func loginKey(user, addr string) string { return hashKey(strings.ToLower(user) + "\x00" + addr) }
func addrKey(addr string) string        { return hashKey("\x00addr\x00" + addr) }

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// blocked says how long the pair must wait before it may try again (0: it
// may now). A count that cannot be read holds nobody back: the password
// check that follows reads the same database.
func (l *loginLimiter) blocked(ctx context.Context, user, addr string) time.Duration {
	now := l.now()
	var wait time.Duration
	for _, k := range []struct {
		key   string
		limit int
	}{{loginKey(user, addr), loginMaxFailures}, {addrKey(addr), loginMaxAddrFailures}} {
		ts, err := l.log.LoginFailures(ctx, k.key, now.Add(-loginWindow), k.limit)
		if err == nil && len(ts) >= k.limit {
			wait = max(wait, ts[0].Add(loginWindow).Sub(now))
		}
	}
	return wait
}

// failed records a failed sign-in.
func (l *loginLimiter) failed(ctx context.Context, user, addr string) error {
	now := l.now()
	return l.log.AddLoginFailures(ctx, now, now.Add(-loginWindow), loginKey(user, addr), addrKey(addr))
}

// succeeded clears the pair's failures.
func (l *loginLimiter) succeeded(ctx context.Context, user, addr string) error {
	return l.log.ClearLoginFailures(ctx, loginKey(user, addr))
}

// memFailures is a failureLog in this process's memory, bounded to
// loginMaxKeys keys of at most loginMaxAddrFailures failures each.
type memFailures struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

func (m *memFailures) LoginFailures(_ context.Context, key string, since time.Time, limit int) ([]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []time.Time
	for _, t := range m.fails[key] {
		if t.After(since) {
			out = append(out, t)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (m *memFailures) AddLoginFailures(_ context.Context, at, expired time.Time, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.fails) >= loginMaxKeys {
		for k, ts := range m.fails {
			if len(ts) == 0 || !ts[len(ts)-1].After(expired) {
				delete(m.fails, k)
			}
		}
	}
	for _, k := range keys {
		ts, known := m.fails[k]
		if !known && len(m.fails) >= loginMaxKeys {
			continue // still full of fresh failures: keep counting the known keys only
		}
		i := 0
		for i < len(ts) && !ts[i].After(expired) {
			i++
		}
		ts = append(ts[i:], at)
		if len(ts) > loginMaxAddrFailures {
			ts = ts[len(ts)-loginMaxAddrFailures:]
		}
		m.fails[k] = ts
	}
	return nil
}

func (m *memFailures) ClearLoginFailures(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.fails, key)
	return nil
}

// retryText says when to try again, in whole seconds.
func retryText(d time.Duration) (int, string) {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	return secs, "Too many failed sign-ins for this user, or from your address. Try again in " +
		strconv.Itoa(secs) + " " + unit + " (at " + time.Now().Add(time.Duration(secs)*time.Second).UTC().Format("15:04:05 UTC") + ")."
}
