package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"unicode"
	"unicode/utf8"
)

// Mechanism is a SASL mechanism name.
type Mechanism string

const (
	// ScramSHA256 is SCRAM with SHA-256 (RFC 7677).
	ScramSHA256 Mechanism = "SCRAM-SHA-256"
	// ScramSHA512 is SCRAM with SHA-512 (as Kafka offers it).
	ScramSHA512 Mechanism = "SCRAM-SHA-512"
)

const (
	// MinIterations is the lowest PBKDF2 iteration count accepted, the
	// minimum RFC 7677 asks for (and Kafka's).
	MinIterations = 4096
	// MaxIterations is the highest iteration count accepted. It bounds the
	// work a stored credential (Verify) or a server-first message (a client
	// conversation) can demand. Kafka's own tools stop at 16384.
	MaxIterations = 1 << 20
	// DefaultIterations is a reasonable count for new credentials: the
	// highest one Kafka's tools accept.
	DefaultIterations = 16384
	// SaltBytes is the length of the random salt of a new credential.
	SaltBytes = 24
	// MinSaltBytes is the shortest salt Credential.Validate accepts.
	MinSaltBytes = 16
	// MaxSaltBytes is the longest salt Credential.Validate accepts.
	MaxSaltBytes = 128
)

// Mechanisms returns the supported mechanisms, strongest first.
func Mechanisms() []Mechanism { return []Mechanism{ScramSHA512, ScramSHA256} }

// Valid reports whether m is a supported mechanism.
func (m Mechanism) Valid() bool { return m == ScramSHA256 || m == ScramSHA512 }

// newHash returns the hash constructor of m, or nil for an unknown mechanism.
func (m Mechanism) newHash() func() hash.Hash {
	switch m {
	case ScramSHA256:
		return sha256.New
	case ScramSHA512:
		return sha512.New
	}
	return nil
}

// size returns the digest size of m's hash, or 0 for an unknown mechanism.
func (m Mechanism) size() int {
	switch m {
	case ScramSHA256:
		return sha256.Size
	case ScramSHA512:
		return sha512.Size
	}
	return 0
}

// Credential is what is stored for one user and one mechanism: never the
// password, only what a server needs to check a SCRAM proof.
type Credential struct {
	// Mechanism is the SCRAM mechanism the keys were derived for.
	Mechanism Mechanism `json:"mechanism"`
	// Salt is the PBKDF2 salt.
	Salt []byte `json:"salt"`
	// Iterations is the PBKDF2 iteration count.
	Iterations int `json:"iterations"`
	// StoredKey is H(HMAC(SaltedPassword, "Client Key")).
	StoredKey []byte `json:"stored_key"`
	// ServerKey is HMAC(SaltedPassword, "Server Key").
	ServerKey []byte `json:"server_key"`
}

// NewCredential derives a credential for password with a fresh random salt
// of SaltBytes bytes and the given iteration count (at least MinIterations,
// at most MaxIterations). The password is used as its UTF-8 bytes (see the
// package documentation on SASLprep); it must be non-empty and free of
// control characters.
func NewCredential(m Mechanism, password string, iterations int) (Credential, error) {
	salt := make([]byte, SaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return Credential{}, fmt.Errorf("auth: salt: %w", err)
	}
	return newCredentialWithSalt(m, password, salt, iterations)
}

// newCredentialWithSalt is NewCredential with a given salt (tests use the RFC
// 7677 vector's).
func newCredentialWithSalt(m Mechanism, password string, salt []byte, iterations int) (Credential, error) {
	if !m.Valid() {
		return Credential{}, fmt.Errorf("%w: %q", ErrUnknownMechanism, string(m))
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("%w: %d not in [%d, %d]", ErrIterations, iterations, MinIterations, MaxIterations)
	}
	if err := checkPassword(password); err != nil {
		return Credential{}, err
	}
	salted, err := saltPassword(m, password, salt, iterations)
	if err != nil {
		return Credential{}, err
	}
	stored, server := deriveKeys(m, salted)
	return Credential{
		Mechanism:  m,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  stored,
		ServerKey:  server,
	}, nil
}

// Verify reports whether password is the one c was derived from. It costs one
// PBKDF2 derivation (c.Iterations rounds) and compares in constant time. An
// invalid credential verifies nothing.
func (c Credential) Verify(password string) bool {
	if c.Validate() != nil || checkPassword(password) != nil {
		return false
	}
	salted, err := saltPassword(c.Mechanism, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	stored, server := deriveKeys(c.Mechanism, salted)
	okStored := subtle.ConstantTimeCompare(stored, c.StoredKey)
	okServer := subtle.ConstantTimeCompare(server, c.ServerKey)
	return okStored&okServer == 1
}

// Validate checks that c is usable: a known mechanism, keys of the hash's
// size, a salt of MinSaltBytes to MaxSaltBytes bytes and an iteration count
// in [MinIterations, MaxIterations].
func (c Credential) Validate() error {
	if !c.Mechanism.Valid() {
		return fmt.Errorf("%w: %w: %q", ErrInvalidCredential, ErrUnknownMechanism, string(c.Mechanism))
	}
	size := c.Mechanism.size()
	switch {
	case len(c.StoredKey) != size:
		return fmt.Errorf("%w: stored key is %d bytes, %s needs %d", ErrInvalidCredential, len(c.StoredKey), c.Mechanism, size)
	case len(c.ServerKey) != size:
		return fmt.Errorf("%w: server key is %d bytes, %s needs %d", ErrInvalidCredential, len(c.ServerKey), c.Mechanism, size)
	case len(c.Salt) < MinSaltBytes || len(c.Salt) > MaxSaltBytes:
		return fmt.Errorf("%w: salt is %d bytes, not in [%d, %d]", ErrInvalidCredential, len(c.Salt), MinSaltBytes, MaxSaltBytes)
	case c.Iterations < MinIterations || c.Iterations > MaxIterations:
		return fmt.Errorf("%w: %w: %d not in [%d, %d]", ErrInvalidCredential, ErrIterations, c.Iterations, MinIterations, MaxIterations)
	}
	return nil
}

// saltPassword returns SaltedPassword = Hi(password, salt, i), which is
// PBKDF2 with HMAC-H and a key of H's size.
func saltPassword(m Mechanism, password string, salt []byte, iterations int) ([]byte, error) {
	salted, err := pbkdf2.Key(m.newHash(), password, salt, iterations, m.size())
	if err != nil {
		return nil, fmt.Errorf("auth: pbkdf2: %w", err)
	}
	return salted, nil
}

// deriveKeys returns StoredKey and ServerKey of a salted password.
func deriveKeys(m Mechanism, salted []byte) (stored, server []byte) {
	clientKey := hmacSum(m, salted, []byte("Client Key"))
	return hashSum(m, clientKey), hmacSum(m, salted, []byte("Server Key"))
}

// hmacSum returns HMAC-H(key, msg).
func hmacSum(m Mechanism, key, msg []byte) []byte {
	h := hmac.New(m.newHash(), key)
	h.Write(msg)
	return h.Sum(nil)
}

// hashSum returns H(msg).
func hashSum(m Mechanism, msg []byte) []byte {
	h := m.newHash()()
	h.Write(msg)
	return h.Sum(nil)
}

// checkPassword rejects what SASLprep would prohibit and this package can
// check without Unicode tables beyond the standard library's: an empty
// password, invalid UTF-8 and control characters.
func checkPassword(password string) error {
	if err := checkSASLString(password); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidPassword, err)
	}
	return nil
}

// checkUsername applies the password rules to a user name.
func checkUsername(user string) error {
	if err := checkSASLString(user); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidUsername, err)
	}
	return nil
}

// checkSASLString returns a reason (not an error chain) when s is empty,
// invalid UTF-8 or contains a control character.
func checkSASLString(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}
