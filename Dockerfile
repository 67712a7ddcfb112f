# vpnfwd as a container image: a static binary on an empty base (nothing
# else to download or patch), with CA certificates for providers' HTTPS.
#
#   docker build -t vpnfwd .
#   docker run --rm vpnfwd demo
#
# Every setting is an environment variable (VPNFWD_PROVIDER, VPNFWD_WG_CONFIG,
# ...; see the README's Configuration table). examples/docker-compose.yml
# runs it as a sidecar.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=container
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vpnfwd ./cmd/vpnfwd \
 && mkdir -p /out/var/lib/vpnfwd /out/var/run/wireguard /out/tmp \
 && chmod 1777 /out/tmp \
 && mkdir -p /out/etc/ssl/certs && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

FROM scratch
COPY --from=build /out/ /
ENV VPNFWD_STATE_DIR=/var/lib/vpnfwd
VOLUME /var/lib/vpnfwd
# Healthy while a forwarded port is held (asks the control API on loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/vpnfwd", "port"]
ENTRYPOINT ["/vpnfwd"]
CMD ["up"]
