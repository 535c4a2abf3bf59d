package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

var (
	// ErrNoCert means the Store has no certificate and key to present.
	ErrNoCert = errors.New("tlsutil: no certificate configured")
	// ErrNoCA means the Store has no CA file to verify peers against.
	ErrNoCA = errors.New("tlsutil: no CA configured")
	// ErrNotVerified means a connection has no verified peer chain.
	ErrNotVerified = errors.New("tlsutil: peer certificate not verified")
	// ErrNotNode means a certificate carries no (or more than one) node URI.
	ErrNotNode = errors.New("tlsutil: not a node certificate")
	// ErrBadNodeID means a node id is empty or has a character other than
	// letters, digits, '.', '-' and '_'.
	ErrBadNodeID = errors.New("tlsutil: invalid node id")
	// ErrBadFiles means a Files is incomplete (a certificate without its
	// key, or the reverse, or nothing at all).
	ErrBadFiles = errors.New("tlsutil: invalid files")
	// ErrExists means WriteFiles would overwrite a file and was not told to.
	ErrExists = errors.New("tlsutil: file exists")
	// ErrBadCA means a CA certificate or key cannot be used to sign.
	ErrBadCA = errors.New("tlsutil: invalid CA")
)

// nodeURIPrefix starts the URI SAN of a node certificate.
const nodeURIPrefix = "strata://node/"

// NodeURI is the URI SAN that binds a certificate to node id.
func NodeURI(id string) (*url.URL, error) {
	if err := ValidateNodeID(id); err != nil {
		return nil, err
	}
	return url.Parse(nodeURIPrefix + id)
}

// ValidateNodeID checks that id can be a node id in a certificate: not
// empty, at most 253 characters of letters, digits, '.', '-' and '_'.
func ValidateNodeID(id string) error {
	if id == "" || len(id) > 253 {
		return fmt.Errorf("%w %q", ErrBadNodeID, id)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			return fmt.Errorf("%w %q: character %q", ErrBadNodeID, id, r)
		}
	}
	return nil
}

// NodeID returns the node id of a node certificate: the id of its one
// strata://node/<id> URI SAN. A certificate with none, with two, or with
// a malformed one is not a node certificate. NodeID does not verify the
// certificate; callers use it on verified chains.
func NodeID(cert *x509.Certificate) (string, bool) {
	if cert == nil {
		return "", false
	}
	id, found := "", false
	for _, u := range cert.URIs {
		s := u.String()
		if !strings.HasPrefix(s, nodeURIPrefix) {
			continue
		}
		if found {
			return "", false
		}
		found = true
		id = strings.TrimPrefix(s, nodeURIPrefix)
	}
	if !found || ValidateNodeID(id) != nil {
		return "", false
	}
	return id, true
}

// Principal names the holder of a verified certificate: "node:<id>" for a
// node certificate, else "user:<CN>".
func Principal(cert *x509.Certificate) string {
	if id, ok := NodeID(cert); ok {
		return "node:" + id
	}
	if cert == nil {
		return "user:"
	}
	return "user:" + cert.Subject.CommonName
}

// PeerNodeID returns the node id of the leaf of the peer's verified chain.
// It fails with ErrNotVerified when crypto/tls verified no chain (no
// client certificate, a config that does not verify, or the dialing side
// of NodeClientConfig, which verifies by itself: use Store.VerifyNode
// there), and with ErrNotNode when the leaf is not a node certificate.
func PeerNodeID(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", ErrNotVerified
	}
	leaf := cs.VerifiedChains[0][0]
	id, ok := NodeID(leaf)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNotNode, Principal(leaf))
	}
	return id, nil
}
