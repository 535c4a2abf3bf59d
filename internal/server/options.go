package server

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/stratalog/strata/api/bufpool"
)

// WindowBytes is the HTTP/2 flow-control window, per stream and per
// connection, that the server grants its clients (the Go client grants the
// same). A fixed window turns off gRPC's BDP estimation, which otherwise
// answers a received DATA frame with a PING whenever no estimate is in
// flight: with one request at a time, a PING and its ack for every request
// and every answer, each a write and a wake-up on both sides. Measured
// here, producing one record at a time with fsync, p50 dropped by about a
// seventh (see the commit that set it). 16 MiB is the largest window BDP
// estimation would grant, so streaming throughput does not drop.
const WindowBytes = 16 << 20

// GRPCOptions returns the options of a gRPC server that serves this
// service: the codec that sends fetched records without copying them and
// the interceptor that hands it the ownership of their buffers (see
// fetch_codec.go), buffers that are not zeroed (package bufpool), a fixed
// flow-control window (WindowBytes) and the message size bounds
// (MaxRecvMsgBytes). Put them before other options; the interceptor must
// be the outermost one, since the reply it returns for Fetch is a type
// only fetchCodec understands.
//
// The server codec is forced (grpc.ForceServerCodecV2) rather than
// registered for the name "proto": a registration would replace the
// proto codec of the whole process, client calls included, while a forced
// codec is this server's alone. Clients see no difference: the server
// already answered every content-subtype with proto (gRPC falls back to it
// for subtypes it does not know), and the bytes on the wire are those of
// proto.Marshal.
//
// Leave grpc.EnableTracing off: its traces print sent messages lazily,
// after their buffers may have gone to another fetch.
func GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(fetchCodec{}),
		grpc.ChainUnaryInterceptor(leaseInterceptor),
		experimental.BufferPool(bufpool.Shared()),
		grpc.InitialWindowSize(WindowBytes), grpc.InitialConnWindowSize(WindowBytes),
		grpc.MaxRecvMsgSize(MaxRecvMsgBytes), grpc.MaxSendMsgSize(MaxRecvMsgBytes),
	}
}
