package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ReloadCheckInterval is the default of how often, at most, a Store looks
// at its files for a change; Open copies it. Default 1s.
var ReloadCheckInterval = time.Second

// Files names the PEM files of a node or client. Paths are used as given.
type Files struct {
	// CA is the bundle of CA certificates that peers are verified against;
	// required to verify peers (client certificates on a server, the
	// server on a client, both sides on the cluster port).
	CA string
	// Cert is the certificate (and any intermediates) presented to peers;
	// set together with Key or not at all.
	Cert string
	// Key is the private key of Cert.
	Key string
}

// Validate checks that Cert and Key are both set or both empty, and that
// something is set.
func (f Files) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("%w: certificate and key go together (cert %q, key %q)", ErrBadFiles, f.Cert, f.Key)
	}
	if f.CA == "" && f.Cert == "" {
		return fmt.Errorf("%w: no CA, certificate or key", ErrBadFiles)
	}
	return nil
}

// ValidateNode checks that all three files are set, as the cluster port
// needs (NodeServerConfig and NodeClientConfig).
func (f Files) ValidateNode() error {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return fmt.Errorf("%w: the cluster port needs a CA, a certificate and a key (ca %q, cert %q, key %q)",
			ErrBadFiles, f.CA, f.Cert, f.Key)
	}
	return nil
}

// material is one consistent load of the files; never modified once
// published.
type material struct {
	cert   *tls.Certificate // nil without Cert/Key; Leaf is set
	pool   *x509.CertPool   // nil without CA
	nodeID string
	isNode bool
}

// fileData is what one read of a file gave: its bytes or the error.
type fileData struct {
	data []byte
	err  error
}

func (a fileData) same(b fileData) bool {
	if (a.err == nil) != (b.err == nil) {
		return false
	}
	if a.err != nil {
		return a.err.Error() == b.err.Error()
	}
	return bytes.Equal(a.data, b.data)
}

// Store holds the current certificate, key and CA pool of a Files and
// reloads them when the files change (see the package documentation).
// It is safe for concurrent use.
type Store struct {
	files    Files
	logger   *slog.Logger
	interval atomic.Int64 // time.Duration
	cur      atomic.Pointer[material]

	mu      sync.Mutex  // guards checked and seen; held while reloading
	checked time.Time   // last look at the files
	seen    [3]fileData // CA, Cert, Key at the last load attempt
}

// Open loads and validates the files now and returns a Store serving
// them. Errors name the file at fault. A nil logger discards.
func Open(f Files, logger *slog.Logger) (*Store, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{files: f, logger: logger}
	s.interval.Store(int64(ReloadCheckInterval))
	fd := s.read()
	m, err := load(f, fd)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	s.seen = fd
	s.checked = time.Now()
	return s, nil
}

// SetReloadCheckInterval sets how often, at most, the files are looked at;
// 0 looks on every handshake.
func (s *Store) SetReloadCheckInterval(d time.Duration) { s.interval.Store(int64(d)) }

// Files returns the files the Store reads.
func (s *Store) Files() Files { return s.files }

// Leaf returns the current certificate, or nil without one.
func (s *Store) Leaf() *x509.Certificate {
	s.maybeReload()
	if c := s.cur.Load().cert; c != nil {
		return c.Leaf
	}
	return nil
}

// NodeID returns the node id of the current certificate, if it is a node
// certificate.
func (s *Store) NodeID() (string, bool) {
	s.maybeReload()
	m := s.cur.Load()
	return m.nodeID, m.isNode
}

// current returns the material after a reload check.
func (s *Store) current() *material {
	s.maybeReload()
	return s.cur.Load()
}

// read reads the files (CA, Cert, Key); an unset one is empty.
func (s *Store) read() [3]fileData {
	var fd [3]fileData
	for i, p := range []string{s.files.CA, s.files.Cert, s.files.Key} {
		if p != "" {
			fd[i].data, fd[i].err = os.ReadFile(p)
		}
	}
	return fd
}

// maybeReload reloads the files if the interval has passed since the last
// look and any file changed. A failed load keeps the current material and
// warns once for this version of the files. The files are small, so a
// look reads them and compares bytes: modification times are too coarse
// (a kernel tick) to see two writes in a row, and a new certificate or key
// often has the old one's size.
func (s *Store) maybeReload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.checked) < time.Duration(s.interval.Load()) {
		return
	}
	s.checked = now
	fd := s.read()
	if fd[0].same(s.seen[0]) && fd[1].same(s.seen[1]) && fd[2].same(s.seen[2]) {
		return
	}
	s.seen = fd
	m, err := load(s.files, fd)
	if err != nil {
		old := s.cur.Load()
		args := []any{"err", err}
		if old.cert != nil {
			args = append(args, "serving_serial", old.cert.Leaf.SerialNumber.Text(16))
		}
		s.logger.Warn("tls: reload failed, keeping the previous certificate and CA", args...)
		return
	}
	s.cur.Store(m)
	args := []any{"ca", s.files.CA, "cert", s.files.Cert}
	if m.cert != nil {
		l := m.cert.Leaf
		args = append(args, "subject", l.Subject.String(), "serial", l.SerialNumber.Text(16), "not_after", l.NotAfter)
	}
	s.logger.Info("tls: reloaded certificate files", args...)
}

// load checks and parses what was read of the files of f.
func load(f Files, fd [3]fileData) (*material, error) {
	for i, what := range []string{"CA", "certificate", "key"} {
		if fd[i].err != nil {
			return nil, fmt.Errorf("tlsutil: %s: %w", what, fd[i].err)
		}
	}
	m := &material{}
	if f.CA != "" {
		pool, err := parsePool(f.CA, fd[0].data)
		if err != nil {
			return nil, err
		}
		m.pool = pool
	}
	if f.Cert != "" {
		pair, err := tls.X509KeyPair(fd[1].data, fd[2].data)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: certificate %s with key %s: %w", f.Cert, f.Key, err)
		}
		if pair.Leaf == nil {
			if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tlsutil: certificate %s: %w", f.Cert, err)
			}
		}
		m.cert = &pair
		m.nodeID, m.isNode = NodeID(pair.Leaf)
	}
	return m, nil
}

// parsePool parses a bundle of PEM CA certificates read from path; it
// refuses one with none, or with a block that does not parse.
func parsePool(path string, data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: CA file %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tlsutil: CA file %s: no PEM certificate", path)
	}
	return pool, nil
}
