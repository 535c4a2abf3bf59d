package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/kafka"
	"github.com/stratalog/strata/internal/server"
	"github.com/stratalog/strata/internal/tlsutil"
)

// kafkaSecurity gives the Kafka listener the node's users, ACLs and audit
// log: the same decisions as the gRPC service.
type kafkaSecurity struct {
	sec   *server.Security
	b     *broker.Broker
	audit *auth.Audit
}

func (k kafkaSecurity) Required() bool { return k.sec.Required }
func (k kafkaSecurity) Credential(user string, m auth.Mechanism) (auth.Credential, bool) {
	return k.b.UserCredential(user, m)
}
func (k kafkaSecurity) Allowed(p string, op auth.Operation, res auth.ResourceType, name string) bool {
	return k.sec.Allowed(p, op, res, name)
}
func (k kafkaSecurity) Audit() *auth.Audit { return k.audit }

// listenKafka opens the Kafka listener's port (before the node starts, so
// that its address can be advertised).
func (a *Agent) listenKafka() error {
	if a.cfg.KafkaAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.KafkaAddr)
	if err != nil {
		return fmt.Errorf("agent: kafka listener: %w", err)
	}
	a.kafkaLn = ln
	return nil
}

// kafkaAdvertised is the Kafka address other nodes give clients.
func (a *Agent) kafkaAdvertised() string {
	if a.kafkaLn == nil {
		return ""
	}
	addr := a.kafkaLn.Addr().String()
	if a.cfg.AdvertiseAddr != "" {
		_, port, _ := net.SplitHostPort(addr)
		return net.JoinHostPort(a.cfg.AdvertiseAddr, port)
	}
	return addr
}

// startKafka serves the Kafka protocol on the listener, with TLS when the
// node has it and SASL/SCRAM plus ACLs when auth is on.
func (a *Agent) startKafka(sec *server.Security, logger *slog.Logger) error {
	if a.kafkaLn == nil {
		return nil
	}
	kc := kafka.DefaultConfig()
	kc.AutoCreateTopics = a.cfg.KafkaAutoCreateTopics
	kc.Logger = logger // the listener names its component
	kc.Security = kafkaSecurity{sec: sec, b: a.broker, audit: a.sec.audit}
	kc.HandshakeTimeout = a.cfg.HandshakeTimeout
	kc.SlowRequest = a.cfg.SlowRequest
	kc.CertPrincipal = tlsutil.Principal
	k, err := kafka.New(a.broker, kc)
	if err != nil {
		return err
	}
	a.kafka = k
	ln := a.kafkaLn
	if a.sec.tls != nil {
		ln = tls.NewListener(ln, a.sec.tls.ServerConfig(tls.VerifyClientCertIfGiven))
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := k.Serve(ln); err != nil && !errors.Is(err, kafka.ErrClosed) {
			a.log.Error("kafka listener", "err", err)
		}
	}()
	return nil
}

// KafkaAddr is the address of the Kafka listener ("" when off).
func (a *Agent) KafkaAddr() string {
	if a.kafkaLn == nil {
		return ""
	}
	return a.kafkaLn.Addr().String()
}
