package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// MaxMessageBytes bounds one SCRAM message; a longer one is malformed.
const MaxMessageBytes = 8192

// nonceBytes is the number of random bytes in a nonce (base64-encoded on the
// wire, so 24 printable characters).
const nonceBytes = 18

// conversation states, shared by the server and the client.
const (
	stateStart = iota
	stateFirstDone
	stateDone
	stateFailed
)

// processFakeKey is the default key of the fake salts given to unknown users:
// random, so stable only within one process (see SetFakeSaltKey).
var processFakeKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("auth: random fake-salt key: %v", err))
	}
	return k
})

// ServerConversation is the server side of one SCRAM exchange: feed Step the
// client's messages in order and send back what it returns. It is not safe
// for concurrent use; one conversation serves one connection attempt.
type ServerConversation struct {
	mech    Mechanism
	lookup  func(user string) (Credential, bool)
	nonce   func() (string, error) // test hook; nil means randomNonce
	fakeKey []byte                 // nil means processFakeKey()

	state     int
	user      string
	gs2Header string // e.g. "n,," as the client sent it
	nonceAll  string // client nonce + server nonce
	authFirst string // client-first-message-bare "," server-first-message
	cred      Credential
	known     bool // cred came from lookup and is valid for mech
}

// NewServerConversation starts a server conversation for mechanism m.
// lookup returns the stored credential of a user (for any mechanism: one of
// another mechanism counts as unknown). It is called once, from the first
// Step.
func NewServerConversation(m Mechanism, lookup func(user string) (Credential, bool)) *ServerConversation {
	return &ServerConversation{mech: m, lookup: lookup}
}

// SetFakeSaltKey sets the key from which the salts shown to unknown users are
// derived; call it before the first Step. By default the key is random per
// process, so an attacker who asks two nodes of a cluster for the same user
// sees the same salt only if the user exists. Give every node the same
// secret (for example random bytes kept in the metadata group) to close that
// gap.
func (c *ServerConversation) SetFakeSaltKey(key []byte) {
	c.fakeKey = append([]byte(nil), key...)
}

// Done reports whether the exchange finished successfully.
func (c *ServerConversation) Done() bool { return c.state == stateDone }

// Username returns the authenticated user once Done, and "" before.
func (c *ServerConversation) Username() string {
	if c.state != stateDone {
		return ""
	}
	return c.user
}

// ClaimedUser returns the user name the client's first message claimed
// (it may not exist, and the exchange may have failed since), for logs
// and audits; "" before a well-formed first message.
func (c *ServerConversation) ClaimedUser() string { return c.user }

// Step consumes one client message and returns the server's answer: the
// server-first message for the client-first one, the server-final message
// (v=...) for the client-final one. Any error ends the conversation; a
// wrong password and an unknown user both give ErrAuthFailed.
func (c *ServerConversation) Step(clientMsg []byte) (serverMsg []byte, err error) {
	if len(clientMsg) > MaxMessageBytes {
		c.state = stateFailed
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(clientMsg), MaxMessageBytes)
	}
	var out string
	switch c.state {
	case stateStart:
		out, err = c.clientFirst(string(clientMsg))
	case stateFirstDone:
		out, err = c.clientFinal(string(clientMsg))
	default:
		return nil, ErrConversationDone
	}
	if err != nil {
		c.state = stateFailed
		return nil, err
	}
	return []byte(out), nil
}

// clientFirst handles the client-first message and returns the server-first
// message.
func (c *ServerConversation) clientFirst(msg string) (string, error) {
	if !c.mech.Valid() {
		return "", fmt.Errorf("%w: %q", ErrUnknownMechanism, string(c.mech))
	}
	gs2, bare, err := splitGS2(msg)
	if err != nil {
		return "", err
	}
	user, cnonce, err := parseClientFirstBare(bare)
	if err != nil {
		return "", err
	}
	if authzid := gs2[2 : len(gs2)-1]; authzid != "" {
		if name, err := decodeSASLName(strings.TrimPrefix(authzid, "a=")); err != nil || name != user {
			return "", ErrAuthzid
		}
	}
	snonce, err := c.newNonce()
	if err != nil {
		return "", err
	}
	c.user, c.gs2Header, c.nonceAll = user, gs2, cnonce+snonce
	c.cred, c.known = c.credential(user)
	first := "r=" + c.nonceAll + ",s=" + base64.StdEncoding.EncodeToString(c.cred.Salt) +
		",i=" + strconv.Itoa(c.cred.Iterations)
	c.authFirst = bare + "," + first
	c.state = stateFirstDone
	return first, nil
}

// credential returns the user's credential, or a fake one that looks real
// (a salt derived from the name, DefaultIterations) and known=false. The
// fake is derived in both cases so both take the same time.
func (c *ServerConversation) credential(user string) (Credential, bool) {
	key := c.fakeKey
	if key == nil {
		key = processFakeKey()
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(string(c.mech) + "\x00" + user))
	// The fake keys only have to have the right size: the proof is rejected
	// whatever it is, after the same work as for a real user.
	fake := Credential{
		Mechanism:  c.mech,
		Salt:       mac.Sum(nil)[:SaltBytes], // SaltBytes <= sha256.Size
		Iterations: DefaultIterations,
		StoredKey:  make([]byte, c.mech.size()),
		ServerKey:  make([]byte, c.mech.size()),
	}
	if c.lookup != nil {
		if cred, ok := c.lookup(user); ok && cred.Mechanism == c.mech && cred.Validate() == nil {
			return cred, true
		}
	}
	return fake, false
}

// clientFinal checks the client-final message and returns the server-final
// message.
func (c *ServerConversation) clientFinal(msg string) (string, error) {
	withoutProof, cbind, nonce, proof, err := parseClientFinal(msg)
	if err != nil {
		return "", err
	}
	if cbind != c.gs2Header {
		return "", fmt.Errorf("%w: channel binding data differs from the gs2 header", ErrAuthFailed)
	}
	if nonce != c.nonceAll {
		return "", fmt.Errorf("%w: nonce mismatch", ErrAuthFailed)
	}
	m := c.mech
	if len(proof) != m.size() {
		return "", fmt.Errorf("%w: proof is %d bytes, %s needs %d", ErrMalformed, len(proof), m, m.size())
	}
	authMessage := []byte(c.authFirst + "," + withoutProof)
	clientKey := hmacSum(m, c.cred.StoredKey, authMessage) // ClientSignature
	subtle.XORBytes(clientKey, clientKey, proof)           // now ClientKey
	ok := subtle.ConstantTimeCompare(hashSum(m, clientKey), c.cred.StoredKey) == 1
	if !ok || !c.known {
		return "", ErrAuthFailed
	}
	c.state = stateDone
	return "v=" + base64.StdEncoding.EncodeToString(hmacSum(m, c.cred.ServerKey, authMessage)), nil
}

// newNonce returns a fresh server nonce.
func (c *ServerConversation) newNonce() (string, error) {
	if c.nonce != nil {
		return c.nonce()
	}
	return randomNonce()
}

// randomNonce returns nonceBytes random bytes in base64: printable and free
// of commas, as RFC 5802 requires.
func randomNonce() (string, error) {
	b := make([]byte, nonceBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// splitGS2 splits a client-first message into its gs2 header (with the
// trailing comma) and the client-first-message-bare. Only the "n" flag is
// accepted.
func splitGS2(msg string) (gs2, bare string, err error) {
	switch {
	case strings.HasPrefix(msg, "p="):
		return "", "", fmt.Errorf("%w: client requires it (p=)", ErrChannelBinding)
	case strings.HasPrefix(msg, "y,"):
		return "", "", fmt.Errorf("%w: only gs2 flag n is accepted, got y", ErrChannelBinding)
	case !strings.HasPrefix(msg, "n,"):
		return "", "", fmt.Errorf("%w: gs2 header must start with n,", ErrMalformed)
	}
	end := strings.IndexByte(msg[2:], ',')
	if end < 0 {
		return "", "", fmt.Errorf("%w: gs2 header not terminated", ErrMalformed)
	}
	authzid := msg[2 : 2+end]
	if authzid != "" && !strings.HasPrefix(authzid, "a=") {
		return "", "", fmt.Errorf("%w: bad authzid field", ErrMalformed)
	}
	return msg[:2+end+1], msg[2+end+1:], nil
}

// parseClientFirstBare returns the user (unescaped) and the client nonce of
// a client-first-message-bare. Extensions after the nonce are ignored.
func parseClientFirstBare(bare string) (user, nonce string, err error) {
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return "", "", fmt.Errorf("%w: client-first needs n= and r=", ErrMalformed)
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return "", "", fmt.Errorf("%w: mandatory extension not supported", ErrMalformed)
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return "", "", fmt.Errorf("%w: client-first must start with n=", ErrMalformed)
	}
	if user, err = decodeSASLName(name); err != nil {
		return "", "", err
	}
	if err := checkUsername(user); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if nonce, ok = strings.CutPrefix(attrs[1], "r="); !ok {
		return "", "", fmt.Errorf("%w: client-first needs r= after n=", ErrMalformed)
	}
	if err := checkNonce(nonce); err != nil {
		return "", "", err
	}
	for _, ext := range attrs[2:] {
		if k, _, ok := strings.Cut(ext, "="); !ok || k == "" {
			return "", "", fmt.Errorf("%w: bad extension", ErrMalformed)
		}
	}
	return user, nonce, nil
}

// parseClientFinal splits a client-final message. cbind is the decoded
// channel-binding data (the gs2 header, since no binding is offered).
func parseClientFinal(msg string) (withoutProof, cbind, nonce string, proof []byte, err error) {
	cut := strings.LastIndexByte(msg, ',')
	if cut < 0 {
		return "", "", "", nil, fmt.Errorf("%w: client-final has no proof", ErrMalformed)
	}
	withoutProof = msg[:cut]
	p, ok := strings.CutPrefix(msg[cut+1:], "p=")
	if !ok {
		return "", "", "", nil, fmt.Errorf("%w: client-final must end with p=", ErrMalformed)
	}
	if proof, err = base64.StdEncoding.Strict().DecodeString(p); err != nil {
		return "", "", "", nil, fmt.Errorf("%w: proof: %v", ErrMalformed, err)
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 {
		return "", "", "", nil, fmt.Errorf("%w: client-final needs c= and r=", ErrMalformed)
	}
	c, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return "", "", "", nil, fmt.Errorf("%w: client-final must start with c=", ErrMalformed)
	}
	cb, err := base64.StdEncoding.Strict().DecodeString(c)
	if err != nil {
		return "", "", "", nil, fmt.Errorf("%w: channel binding: %v", ErrMalformed, err)
	}
	if nonce, ok = strings.CutPrefix(attrs[1], "r="); !ok {
		return "", "", "", nil, fmt.Errorf("%w: client-final needs r= after c=", ErrMalformed)
	}
	return withoutProof, string(cb), nonce, proof, nil
}

// checkNonce accepts a non-empty nonce of printable ASCII other than ','.
func checkNonce(nonce string) error {
	if nonce == "" {
		return fmt.Errorf("%w: empty nonce", ErrMalformed)
	}
	for i := 0; i < len(nonce); i++ {
		if b := nonce[i]; b < 0x21 || b > 0x7e || b == ',' {
			return fmt.Errorf("%w: nonce byte %#x not printable", ErrMalformed, b)
		}
	}
	return nil
}

// encodeSASLName escapes '=' and ',' in a user name (RFC 5802 section 5.1).
func encodeSASLName(name string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(name)
}

// decodeSASLName undoes encodeSASLName; any other '=' sequence is malformed.
func decodeSASLName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1 : min(i+3, len(s))] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in user name", ErrMalformed)
		}
		i += 2
	}
	return b.String(), nil
}
