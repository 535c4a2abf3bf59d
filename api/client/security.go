package client

import (
	"context"
	"crypto/tls"
	"encoding/base64"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// basicAuth sends a user and password with every call, as an HTTP Basic
// authorization header that the broker checks against the user's SCRAM
// credential. It refuses to send them over a connection without TLS.
type basicAuth struct{ header string }

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b basicAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.header}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// password never crosses the network in clear.
func (basicAuth) RequireTransportSecurity() bool { return true }

// SecurityDialOptions returns the gRPC dial options of a connection with
// TLS (tlsCfg nil: plaintext) and, when user is set, a user and password
// sent with every call (which needs TLS).
func SecurityDialOptions(tlsCfg *tls.Config, user, password string) []grpc.DialOption {
	var opts []grpc.DialOption
	if tlsCfg != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if user != "" {
		h := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
		opts = append(opts, grpc.WithPerRPCCredentials(basicAuth{header: h}))
	}
	return opts
}
