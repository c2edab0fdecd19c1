package server

import (
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

type loginLimiter struct {
	mu    sync.Mutex
	fails map[string][]time.Time
	// refused tallies, per address, the sign-ins refused while it was held
	// back, so a flood writes two audit rows (the first refusal and a
	// summary), not one per attempt.
	refused map[string]*refusalTally
	now     func() time.Time
}

type refusalTally struct {
	more  int // refusals after the first
	since time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{fails: map[string][]time.Time{}, refused: map[string]*refusalTally{}, now: time.Now}
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

func loginKey(user, addr string) string { return strings.ToLower(user) + "\x00" + addr }

// addrKey counts an address's failures whatever the name; no user name
// holds a NUL, so it cannot collide with a pair's key.
func addrKey(addr string) string { return "\x00addr\x00" + addr }

// recent drops the failures older than the window; the caller holds mu.
func (l *loginLimiter) recent(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= loginWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = ts
	return ts
}

// blocked says how long the pair must wait before it may try again (0: it may now).
func (l *loginLimiter) blocked(user, addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range []struct {
		key   string
		limit int
	}{{loginKey(user, addr), loginMaxFailures}, {addrKey(addr), loginMaxAddrFailures}} {
		ts := l.recent(k.key, now)
		if len(ts) >= k.limit {
			wait = max(wait, ts[len(ts)-k.limit].Add(loginWindow).Sub(now))
		}
	}
	return wait
}

// failed records a failed sign-in.
func (l *loginLimiter) failed(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) >= loginMaxKeys {
		for k := range l.fails {
			l.recent(k, now)
		}
	}
	l.count(loginKey(user, addr), loginMaxFailures, now)
	l.count(addrKey(addr), loginMaxAddrFailures, now)
}

// count adds a failure to a key, keeping only the last limit of them; the
// caller holds mu.
func (l *loginLimiter) count(key string, limit int, now time.Time) {
	if _, known := l.fails[key]; !known && len(l.fails) >= loginMaxKeys {
		return // still full of fresh failures: keep counting the known keys only
	}
	ts := append(l.recent(key, now), now)
	if len(ts) > limit {
		ts = ts[len(ts)-limit:]
	}
	l.fails[key] = ts
}

// succeeded clears the pair's failures.
func (l *loginLimiter) succeeded(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, loginKey(user, addr))
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
