package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// session is one login.
type session struct {
	user    string // the user name (principal user:NAME)
	cred    [32]byte
	expires time.Time
	created time.Time
}

// sessionStore keeps the logins of this node in memory, by the hash of
// their token: a restart logs everyone out, and a token read from memory
// could not be replayed.
type sessionStore struct {
	ttl time.Duration
	max int

	mu       sync.Mutex
	sessions map[[32]byte]session
}

func newSessionStore(ttl time.Duration, maxSessions int) *sessionStore {
	return &sessionStore{ttl: ttl, max: maxSessions, sessions: map[[32]byte]session{}}
}

// create opens a session for user, whose credential has fingerprint cred,
// and returns its token.
func (s *sessionStore) create(user string, cred [32]byte, now time.Time) string {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	if len(s.sessions) >= s.max {
		var oldest [32]byte
		first := true
		for k, v := range s.sessions {
			if first || v.created.Before(s.sessions[oldest].created) {
				oldest, first = k, false
			}
		}
		delete(s.sessions, oldest)
	}
	s.sessions[sha256.Sum256([]byte(token))] = session{user: user, cred: cred, created: now, expires: now.Add(s.ttl)}
	return token
}

// get returns the session of token, if it is open.
func (s *sessionStore) get(token string, now time.Time) (session, bool) {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.sessions[k]
	if ok && now.After(v.expires) {
		delete(s.sessions, k)
		return session{}, false
	}
	return v, ok
}

// drop closes the session of token.
func (s *sessionStore) drop(token string) {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	delete(s.sessions, k)
	s.mu.Unlock()
}

// pruneLocked drops expired sessions. Caller must hold s.mu.
func (s *sessionStore) pruneLocked(now time.Time) {
	for k, v := range s.sessions {
		if now.After(v.expires) {
			delete(s.sessions, k)
		}
	}
}

// rateLimit lets through at most perSecond events a second.
type rateLimit struct {
	mu     sync.Mutex
	second int64
	n      int
}

func (l *rateLimit) allow(perSecond int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().Unix()
	if now != l.second {
		l.second, l.n = now, 0
	}
	if l.n >= perSecond {
		return false
	}
	l.n++
	return true
}
