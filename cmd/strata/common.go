package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/api/client"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/tlsutil"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	brokers string
	output  string
	timeout time.Duration
	// Security: TLS files, a user and where its password is.
	tlsCA, tlsCert, tlsKey string
	user, passwordFile     string
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func (c *clientFlags) register(fs *flag.FlagSet, withOutput bool) {
	def := os.Getenv("STRATA_BROKERS")
	if def == "" {
		def = "127.0.0.1:7400"
	}
	fs.StringVar(&c.brokers, "brokers", def, "comma-separated broker addresses (env STRATA_BROKERS)")
	fs.DurationVar(&c.timeout, "request-timeout", 30*time.Second, "timeout of each request")
	fs.StringVar(&c.tlsCA, "tls-ca", envOr("STRATA_TLS_CA", ""), "CA certificate (PEM) that signs the brokers' certificates; turns TLS on (env STRATA_TLS_CA)")
	fs.StringVar(&c.tlsCert, "tls-cert", envOr("STRATA_TLS_CERT", ""), "client certificate (PEM) for mTLS authentication (env STRATA_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", envOr("STRATA_TLS_KEY", ""), "key (PEM) of --tls-cert (env STRATA_TLS_KEY)")
	fs.StringVar(&c.user, "user", envOr("STRATA_USER", ""), "user to authenticate as, with --password-file or STRATA_PASSWORD; needs TLS (env STRATA_USER)")
	fs.StringVar(&c.passwordFile, "password-file", envOr("STRATA_PASSWORD_FILE", ""), "file whose first line is the password of --user (env STRATA_PASSWORD_FILE)")
	if withOutput {
		fs.StringVar(&c.output, "output", "text", "text (tables for people) or json (for scripts)")
	}
}

func (c *clientFlags) brokerList() []string {
	var out []string
	for _, b := range strings.Split(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// security returns the TLS configuration (nil without --tls-ca) and the
// user and password the flags name.
func (c *clientFlags) security() (*tls.Config, string, string, error) {
	var tc *tls.Config
	if c.tlsCA != "" || c.tlsCert != "" {
		st, err := tlsutil.Open(tlsutil.Files{CA: c.tlsCA, Cert: c.tlsCert, Key: c.tlsKey}, nil)
		if err != nil {
			return nil, "", "", err
		}
		tc = st.ClientConfig("")
	}
	if c.user == "" {
		return tc, "", "", nil
	}
	if tc == nil {
		return nil, "", "", errors.New("--user needs TLS (--tls-ca): the password would cross the network in clear")
	}
	pass, err := readPassword(c.passwordFile)
	if err != nil {
		return nil, "", "", err
	}
	return tc, c.user, pass, nil
}

// readPassword reads the first line of file, or STRATA_PASSWORD without a
// file.
func readPassword(file string) (string, error) {
	if file == "" {
		if p, ok := os.LookupEnv("STRATA_PASSWORD"); ok {
			return p, nil
		}
		return "", errors.New("a password is needed: --password-file or STRATA_PASSWORD")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

// dialOptions are the gRPC options of the flags' security.
func (c *clientFlags) dialOptions() ([]grpc.DialOption, error) {
	tc, user, pass, err := c.security()
	if err != nil {
		return nil, err
	}
	return client.SecurityDialOptions(tc, user, pass), nil
}

// dial connects a client library Client with the flags' brokers and
// security.
func (c *clientFlags) dial(ctx context.Context) (*client.Client, error) {
	tc, user, pass, err := c.security()
	if err != nil {
		return nil, err
	}
	return client.Dial(ctx, c.brokerList(), client.WithTLS(tc), client.WithUser(user, pass))
}

// dialAdmin connects to the first broker that answers, for admin calls
// (any node can answer them, or name the leader).
func (c *clientFlags) dialAdmin(ctx context.Context) (stratav1.StrataClient, func(), error) {
	opts, err := c.dialOptions()
	if err != nil {
		return nil, nil, err
	}
	var lastErr error
	for _, addr := range c.brokerList() {
		conn, err := grpc.NewClient(addr, append(opts, grpc.WithChainUnaryInterceptor(followLeader(opts)))...)
		if err != nil {
			lastErr = err
			continue
		}
		cl := stratav1.NewStrataClient(conn)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cl.Metadata(cctx, &stratav1.MetadataRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			conn.Close()
			lastErr = fmt.Errorf("%s: %s: %s", addr, status.Code(err), status.Convert(err).Message())
			continue
		}
		return cl, func() { conn.Close() }, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no broker address given")
	}
	return nil, nil, fmt.Errorf("cannot reach a broker: %w", lastErr)
}

// followLeader sends a call that a follower answered with NotLeader (and
// the leader's address) to that leader, once, dialled with dialOpts.
func followLeader(dialOpts []grpc.DialOption) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			return nil
		}
		for _, d := range status.Convert(err).Details() {
			nl, ok := d.(*stratav1.NotLeader)
			if !ok || nl.GetLeaderAddr() == "" || nl.GetLeaderAddr() == cc.Target() {
				continue
			}
			lc, derr := grpc.NewClient(nl.GetLeaderAddr(), dialOpts...)
			if derr != nil {
				return err
			}
			defer lc.Close()
			return lc.Invoke(ctx, method, req, reply, opts...)
		}
		return err
	}
}

// command runs a command or subcommand with the arguments that follow its
// name.
type command func(ctx context.Context, args []string) error

// dispatch runs the command of cmds that args[0] names with the rest of
// args. Without a name it prints usage to standard error, and for a name
// cmds lacks the message unknown returns; both end with exit code 2.
func dispatch(ctx context.Context, args []string, cmds map[string]command, usage string, unknown func(name string) string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitError{2}
	}
	run, ok := cmds[args[0]]
	if !ok {
		fmt.Fprint(os.Stderr, unknown(args[0]))
		return exitError{2}
	}
	return run(ctx, args[1:])
}

// unknownSub is the message for an unknown subcommand of `strata cmd`,
// listing the known ones.
func unknownSub(cmd, known string) func(string) string {
	return func(sub string) string {
		return fmt.Sprintf("strata %s: unknown subcommand %q (%s)\n", cmd, sub, known)
	}
}

// withHelp adds -h, --help and help to cmds: they print text to standard
// output.
func withHelp(cmds map[string]command, text string) map[string]command {
	help := func(context.Context, []string) error {
		fmt.Print(text)
		return nil
	}
	for _, h := range []string{"-h", "--help", "help"} {
		cmds[h] = help
	}
	return cmds
}

// clientFlagSet returns the flag set of `strata name` with the client
// flags, --output included, registered.
func clientFlagSet(name string) (*flag.FlagSet, *clientFlags) {
	cf := &clientFlags{}
	fs := flag.NewFlagSet("strata "+name, flag.ContinueOnError)
	cf.register(fs, true)
	return fs, cf
}

// parseName parses the flags and returns the first positional argument;
// without one it prints usage and returns exit code 2.
func parseName(fs *flag.FlagSet, args []string, usage string) (string, error) {
	if err := parseFlags(fs, interleave(fs, args)); err != nil {
		return "", err
	}
	if fs.Arg(0) == "" {
		fmt.Fprintln(os.Stderr, usage)
		return "", exitError{2}
	}
	return fs.Arg(0), nil
}

// adminCall dials an admin connection and runs fn with the request
// timeout.
func adminCall(ctx context.Context, cf *clientFlags, fn func(context.Context, stratav1.StrataClient) error) error {
	cl, closeFn, err := cf.dialAdmin(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	rctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	return fn(rctx, cl)
}

// rpcErr makes a gRPC error readable: its code and message.
func rpcErr(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return err
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable() *tabwriter.Writer { return tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0) }

// parseFlags parses a command's flags; -h prints help and exits 0, a bad
// flag exits 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitError{0}
		}
		return exitError{2}
	}
	return nil
}

// interleave lets flags follow positional arguments (strata topic create
// NAME --partitions 3): it moves the positional ones to the end.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := fs.Lookup(name); f != nil {
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
					continue
				}
				if i+1 < len(args) {
					flags = append(flags, args[i+1])
					i++
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(append(flags, "--"), pos...)
}
