# Strata in an image with nothing else in it: `make docker` builds the
# static binary (CGO_ENABLED=0) and then this image around it. No base image
# is pulled.
FROM scratch
COPY bin/strata-linux /strata
VOLUME /data
EXPOSE 7400 7401 7402 7480 9092
ENTRYPOINT ["/strata", "server", "--data-dir", "/data", "--grpc-addr", "0.0.0.0:7400", "--http-addr", "0.0.0.0:7480", "--cluster-addr", "0.0.0.0:7401", "--gossip-addr", "0.0.0.0:7402", "--kafka-addr", "0.0.0.0:9092"]
