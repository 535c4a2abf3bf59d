package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/tlsutil"
)

const certUsage = `usage: strata cert create-ca|create-node|create-client|bootstrap ...

  strata cert create-ca [--out DIR] [--name "Strata CA"] [--days 3650] [--force]
      writes DIR/ca.crt and DIR/ca.key
  strata cert create-node ID [--out DIR] [--ca DIR/ca.crt] [--ca-key DIR/ca.key] [--hosts h1,h2] [--days 825] [--force]
      writes DIR/ID.crt and DIR/ID.key: a node certificate (URI strata://node/ID,
      the hosts plus localhost, 127.0.0.1 and ::1) for the cluster and client ports
  strata cert create-client NAME [--out DIR] [--ca DIR/ca.crt] [--ca-key DIR/ca.key] [--days 825] [--force]
      writes DIR/NAME.crt and DIR/NAME.key: a client certificate (CN=NAME)

  strata cert bootstrap --nodes ID1,ID2,... [--clients admin] [--out DIR]
      makes whatever of the CA, the node and client certificates and
      DIR/gossip.key does not exist yet (for compose and quickstarts)

DIR defaults to ./certs. Keys are written with mode 0600; existing files are
kept unless --force is given.`

// clientNameRE is what a client name may be: it names the files too.
var clientNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

// certCommands are the subcommands of `strata cert`.
var certCommands = withHelp(map[string]command{
	"create-ca":     func(_ context.Context, args []string) error { return certCreateCA(args, os.Stdout) },
	"create-node":   func(_ context.Context, args []string) error { return certCreateNode(args, os.Stdout) },
	"create-client": func(_ context.Context, args []string) error { return certCreateClient(args, os.Stdout) },
	"bootstrap":     func(_ context.Context, args []string) error { return certBootstrap(args, os.Stdout) },
}, certUsage+"\n")

func runCert(ctx context.Context, args []string) error {
	return dispatch(ctx, args, certCommands, certUsage+"\n", unknownSub("cert", "create-ca, create-node, create-client"))
}

// certFlags are the flags the cert subcommands share.
type certFlags struct {
	out, ca, caKey string
	days           int
	force          bool
}

func (c *certFlags) register(fs *flag.FlagSet, days int, withCA bool) {
	fs.StringVar(&c.out, "out", "./certs", "directory the files are written to")
	fs.IntVar(&c.days, "days", days, "days the certificate is valid")
	fs.BoolVar(&c.force, "force", false, "replace existing files")
	if withCA {
		fs.StringVar(&c.ca, "ca", "", "CA certificate (default OUT/ca.crt)")
		fs.StringVar(&c.caKey, "ca-key", "", "CA key (default OUT/ca.key)")
	}
}

func (c *certFlags) validity() (time.Duration, error) {
	if c.days <= 0 {
		return 0, fmt.Errorf("--days must be positive, got %d", c.days)
	}
	return time.Duration(c.days) * 24 * time.Hour, nil
}

// readCA reads the CA certificate and key, defaulting to OUT/ca.crt and
// OUT/ca.key.
func (c *certFlags) readCA() (certPEM, keyPEM []byte, err error) {
	if c.ca == "" {
		c.ca = filepath.Join(c.out, "ca.crt")
	}
	if c.caKey == "" {
		c.caKey = filepath.Join(c.out, "ca.key")
	}
	if certPEM, err = os.ReadFile(c.ca); err == nil {
		keyPEM, err = os.ReadFile(c.caKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA: %w (make one with 'strata cert create-ca --out %s', or name it with --ca and --ca-key)", err, c.out)
	}
	return certPEM, keyPEM, nil
}

// onePositional parses the flags and returns the one positional argument.
func onePositional(fs *flag.FlagSet, args []string, what string) (string, error) {
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s %s [flags]\n", fs.Name(), what)
		return "", exitError{2}
	}
	return fs.Arg(0), nil
}

func certCreateCA(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("strata cert create-ca", flag.ContinueOnError)
	var cf certFlags
	cf.register(fs, 3650, false)
	name := fs.String("name", "Strata CA", "common name of the CA")
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "strata cert create-ca takes no arguments, got %q\n", fs.Args())
		return exitError{2}
	}
	validity, err := cf.validity()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := tlsutil.CreateCA(*name, validity)
	if err != nil {
		return err
	}
	return writePair(out, &cf, "ca", certPEM, keyPEM)
}

func certCreateNode(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("strata cert create-node", flag.ContinueOnError)
	var cf certFlags
	cf.register(fs, 825, true)
	hosts := fs.String("hosts", "", "comma-separated DNS names and IPs the node is reached at (localhost, 127.0.0.1 and ::1 are always added)")
	id, err := onePositional(fs, args, "ID")
	if err != nil {
		return err
	}
	if err := tlsutil.ValidateNodeID(id); err != nil {
		return err
	}
	validity, err := cf.validity()
	if err != nil {
		return err
	}
	caCert, caKey, err := cf.readCA()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := tlsutil.CreateNode(caCert, caKey, id, strings.Split(*hosts, ","), validity)
	if err != nil {
		return fmt.Errorf("%w (CA %s, key %s)", err, cf.ca, cf.caKey)
	}
	return writePair(out, &cf, id, certPEM, keyPEM)
}

func certCreateClient(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("strata cert create-client", flag.ContinueOnError)
	var cf certFlags
	cf.register(fs, 825, true)
	name, err := onePositional(fs, args, "NAME")
	if err != nil {
		return err
	}
	if !clientNameRE.MatchString(name) {
		return fmt.Errorf("invalid client name %q: letters, digits, '.', '_', '@' and '-', starting with a letter or digit", name)
	}
	validity, err := cf.validity()
	if err != nil {
		return err
	}
	caCert, caKey, err := cf.readCA()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := tlsutil.CreateClient(caCert, caKey, name, validity)
	if err != nil {
		return fmt.Errorf("%w (CA %s, key %s)", err, cf.ca, cf.caKey)
	}
	return writePair(out, &cf, name, certPEM, keyPEM)
}

// writePair writes OUT/base.crt and OUT/base.key and describes them.
func writePair(out io.Writer, cf *certFlags, base string, certPEM, keyPEM []byte) error {
	certPath, keyPath, err := tlsutil.WriteFiles(cf.out, base, certPEM, keyPEM, cf.force)
	if errors.Is(err, tlsutil.ErrExists) {
		return fmt.Errorf("%w; not replacing it without --force", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (certificate) and %s (key, mode 0600)\n", certPath, keyPath)
	describeCert(out, certPEM)
	return nil
}

// describeCert prints a certificate's subject, SANs, serial and expiry.
func describeCert(out io.Writer, certPEM []byte) {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		fmt.Fprintln(out, "  (cannot describe it: no PEM certificate)")
		return
	}
	pair, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		fmt.Fprintf(out, "  (cannot describe it: %v)\n", err)
		return
	}
	var sans []string
	for _, u := range pair.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	for _, d := range pair.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, ip := range pair.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	if len(sans) == 0 {
		sans = []string{"none"}
	}
	fmt.Fprintf(out, "  subject:    %s\n", pair.Subject)
	fmt.Fprintf(out, "  issuer:     %s\n", pair.Issuer)
	fmt.Fprintf(out, "  SANs:       %s\n", strings.Join(sans, ", "))
	if pair.IsCA {
		fmt.Fprintln(out, "  CA:         yes (keep the key secret: it signs node and client certificates)")
	} else {
		fmt.Fprintf(out, "  principal:  %s\n", tlsutil.Principal(pair))
	}
	fmt.Fprintf(out, "  serial:     %x\n", pair.SerialNumber)
	fmt.Fprintf(out, "  expires:    %s (in %d days)\n", pair.NotAfter.UTC().Format(time.RFC3339),
		int(time.Until(pair.NotAfter).Hours()/24+0.5))
}
