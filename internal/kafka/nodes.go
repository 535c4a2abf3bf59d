package kafka

import (
	"hash/fnv"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// NodeID32 is the Kafka broker id of a Strata node: FNV-1a of its id, 31
// bits, so every node derives the same number without shared state (-1
// stays "no leader").
func NodeID32(id string) int32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int32(h.Sum32() & 0x7fffffff)
}

// nodeID32 maps "" (no leader) to -1.
func nodeID32(id string) int32 {
	if id == "" {
		return -1
	}
	return NodeID32(id)
}

// brokers lists every node with a Kafka listener, as Metadata's brokers.
func (s *Server) brokers() []kmsg.MetadataResponseBroker {
	nodes := s.b.Nodes() // by id
	var out []kmsg.MetadataResponseBroker
	for _, n := range nodes {
		host, port, ok := splitHostPort(n.KafkaAddr)
		if !ok {
			continue
		}
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = NodeID32(n.ID), host, port
		out = append(out, b)
	}
	return out
}

// kafkaAddr returns a node's Kafka host and port.
func (s *Server) kafkaAddr(id string) (string, int32, bool) {
	for _, n := range s.b.Nodes() {
		if n.ID == id {
			return splitHostPort(n.KafkaAddr)
		}
	}
	return "", 0, false
}

func splitHostPort(addr string) (string, int32, bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		return "", 0, false
	}
	return host, int32(port), true
}
