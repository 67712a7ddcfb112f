# vpnfwd as a container image: a static binary on an empty base (nothing
# else to download or patch), with CA certificates for providers' HTTPS.
#
#   docker build -t vpnfwd .
#   docker run --rm vpnfwd demo
#
# Multi-arch (the binary is cross-compiled on the build machine, no
# emulation): docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t vpnfwd .
# With Podman: podman build --format docker --platform linux/amd64,linux/arm64 --manifest vpnfwd .
#
# GO_IMAGE is the builder: any image with the Go toolchain (go on PATH),
# /etc/ssl/certs/ca-certificates.crt and a shell. The default is the
# official one; a machine without a registry gives a local one
# (docs/containers.md shows how to make it from an installed Go).
#
# Every setting is an environment variable (VPNFWD_PROVIDER, VPNFWD_WG_CONFIG,
# ...; see docs/configuration.md). examples/docker-compose.yml runs it as a
# sidecar, examples/kubernetes/ as a pod.
ARG GO_IMAGE=golang:1.26-bookworm
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=container
ARG TARGETOS=linux
ARG TARGETARCH
ARG TARGETVARIANT
RUN GOARCH="${TARGETARCH:-$(go env GOARCH)}"; GOARM="${TARGETVARIANT#v}"; export GOARCH GOARM \
 && CGO_ENABLED=0 GOOS="${TARGETOS}" go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vpnfwd ./cmd/vpnfwd \
 && mkdir -p /out/var/lib/vpnfwd /out/var/run/wireguard /out/tmp \
 && chmod 1777 /out/tmp \
 && mkdir -p /out/etc/ssl/certs && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

FROM scratch
COPY --from=build /out/ /
ENV VPNFWD_STATE_DIR=/var/lib/vpnfwd
VOLUME /var/lib/vpnfwd
# Healthy while a forwarded port is held and not known dead (`vpnfwd port`
# asks the control API on loopback and exits 1 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/vpnfwd", "port"]
ENTRYPOINT ["/vpnfwd"]
CMD ["up"]
