package auth

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// gs2NoBinding is the gs2 header the client sends: no channel binding, no
// authorization identity.
const gs2NoBinding = "n,,"

// stateFinalSent is the client state between its final message and the
// server's; the other states are shared with ServerConversation.
const stateFinalSent = stateFailed + 1

// ClientConversation is the client side of one SCRAM exchange, for tests and
// Go clients: call Step(nil) for the first message, then feed it each server
// message. It is not safe for concurrent use.
type ClientConversation struct {
	mech     Mechanism
	user     string
	password string
	nonce    func() (string, error) // test hook; nil means randomNonce

	state     int
	cnonce    string
	bare      string // client-first-message-bare
	serverSig []byte // expected ServerSignature
}

// NewClientConversation starts a client conversation for user and password
// with mechanism m. Errors (an unknown mechanism, an invalid user or
// password) surface from the first Step.
func NewClientConversation(m Mechanism, user, password string) *ClientConversation {
	return &ClientConversation{mech: m, user: user, password: password}
}

// Done reports whether the exchange finished and the server proved that it
// knows the user's credential.
func (c *ClientConversation) Done() bool { return c.state == stateDone }

// Step returns the next client message. Call it first with nil (it returns
// the client-first message), then with the server-first message (it returns
// the client-final message), then with the server-final message (it returns
// nil, nil once the server's signature checks out). Any error ends the
// conversation.
func (c *ClientConversation) Step(serverMsg []byte) (clientMsg []byte, err error) {
	if len(serverMsg) > MaxMessageBytes {
		c.state = stateFailed
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(serverMsg), MaxMessageBytes)
	}
	var out []byte
	switch c.state {
	case stateStart:
		out, err = c.first()
	case stateFirstDone:
		out, err = c.final(string(serverMsg))
	case stateFinalSent:
		err = c.verifyServer(string(serverMsg))
	default:
		return nil, ErrConversationDone
	}
	if err != nil {
		c.state = stateFailed
		return nil, err
	}
	return out, nil
}

// first returns the client-first message.
func (c *ClientConversation) first() ([]byte, error) {
	if !c.mech.Valid() {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMechanism, string(c.mech))
	}
	if err := checkUsername(c.user); err != nil {
		return nil, err
	}
	if err := checkPassword(c.password); err != nil {
		return nil, err
	}
	newNonce := c.nonce
	if newNonce == nil {
		newNonce = randomNonce
	}
	cnonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	if err := checkNonce(cnonce); err != nil {
		return nil, err
	}
	c.cnonce = cnonce
	c.bare = "n=" + encodeSASLName(c.user) + ",r=" + cnonce
	c.state = stateFirstDone
	return []byte(gs2NoBinding + c.bare), nil
}

// final checks the server-first message and returns the client-final
// message. It costs one PBKDF2 derivation.
func (c *ClientConversation) final(serverFirst string) ([]byte, error) {
	nonce, salt, iterations, err := parseServerFirst(serverFirst)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(nonce, c.cnonce) || len(nonce) == len(c.cnonce) {
		return nil, fmt.Errorf("%w: server nonce does not extend the client's", ErrMalformed)
	}
	m := c.mech
	salted, err := saltPassword(m, c.password, salt, iterations)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2NoBinding)) + ",r=" + nonce
	authMessage := []byte(c.bare + "," + serverFirst + "," + withoutProof)
	clientKey := hmacSum(m, salted, []byte("Client Key"))
	proof := hmacSum(m, hashSum(m, clientKey), authMessage) // ClientSignature
	subtle.XORBytes(proof, proof, clientKey)
	c.serverSig = hmacSum(m, hmacSum(m, salted, []byte("Server Key")), authMessage)
	c.state = stateFinalSent
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verifyServer checks the server-final message.
func (c *ClientConversation) verifyServer(serverFinal string) error {
	if e, ok := strings.CutPrefix(serverFinal, "e="); ok {
		return fmt.Errorf("%w: %s", ErrServerError, e)
	}
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("%w: server-final must start with v= or e=", ErrMalformed)
	}
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // extensions
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil {
		return fmt.Errorf("%w: server signature: %v", ErrMalformed, err)
	}
	if subtle.ConstantTimeCompare(sig, c.serverSig) != 1 {
		return ErrServerSignature
	}
	c.state = stateDone
	return nil
}

// parseServerFirst returns the combined nonce, the salt and the iteration
// count of a server-first message.
func parseServerFirst(msg string) (nonce string, salt []byte, iterations int, err error) {
	attrs := strings.Split(msg, ",")
	if len(attrs) < 3 {
		return "", nil, 0, fmt.Errorf("%w: server-first needs r=, s= and i=", ErrMalformed)
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return "", nil, 0, fmt.Errorf("%w: mandatory extension not supported", ErrMalformed)
	}
	nonce, ok1 := strings.CutPrefix(attrs[0], "r=")
	s, ok2 := strings.CutPrefix(attrs[1], "s=")
	i, ok3 := strings.CutPrefix(attrs[2], "i=")
	if !ok1 || !ok2 || !ok3 {
		return "", nil, 0, fmt.Errorf("%w: server-first must be r=,s=,i=", ErrMalformed)
	}
	if err := checkNonce(nonce); err != nil {
		return "", nil, 0, err
	}
	if salt, err = base64.StdEncoding.Strict().DecodeString(s); err != nil || len(salt) == 0 {
		return "", nil, 0, fmt.Errorf("%w: bad salt", ErrMalformed)
	}
	iterations, err = strconv.Atoi(i)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%w: bad iteration count", ErrMalformed)
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return "", nil, 0, fmt.Errorf("%w: server asks for %d", ErrIterations, iterations)
	}
	return nonce, salt, iterations, nil
}
