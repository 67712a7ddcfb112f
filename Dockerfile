# vpnfwd as a container image: a static binary on an empty base (nothing
# else to download or patch), with CA certificates for providers' HTTPS,
# and for hooks a static busybox as /bin/sh and /bin/wget, a link to
# vpnfwd's GNU-Wget-compatible client (gluetun's hooks call both).
#
#   docker build -t vpnfwd .
#   docker run --rm vpnfwd demo
#
# Both of Docker's builders build it (BuildKit, and the classic builder of
# Debian's docker.io 20.10). Multi-arch (the binary is cross-compiled on
# the build machine, no emulation): docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t vpnfwd .
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
# The builder runs on the build machine's platform and cross-compiles for
# the target's (no emulation). BuildKit gives BUILDPLATFORM without an ARG
# line; Docker's classic builder (Debian's docker.io 20.10 without
# DOCKER_BUILDKIT=1) leaves it empty and cannot parse an empty --platform:
# it takes BUILDER_PLATFORM (on an ARM machine: --build-arg
# BUILDER_PLATFORM=linux/arm64). Podman 4 ignores the line (see
# docs/containers.md). Not a global `ARG BUILDPLATFORM=linux/amd64`
# (gluetun's way): BuildKit takes an ARG's default over the real platform,
# and an ARM machine would build under emulation.
ARG BUILDER_PLATFORM=linux/amd64
# BUSYBOX_IMAGE gives the image /bin/sh for hooks (gluetun's up and down
# commands are '/bin/sh -c ...'): only its /bin/busybox is copied. It must
# be a busybox whose sh looks commands up in PATH, as the official image's
# does, so that the hooks' wget is /bin/wget (vpnfwd's GNU-Wget-compatible
# client) and not busybox's own; a busybox built with the standalone shell
# (Debian's busybox-static) runs its own wget, which refuses gluetun's
# --retry-connrefused.
ARG BUSYBOX_IMAGE=busybox:1.36-musl
FROM ${BUSYBOX_IMAGE} AS busybox

FROM --platform=${BUILDPLATFORM:-$BUILDER_PLATFORM} ${GO_IMAGE} AS build
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
 && mkdir -p /out/var/lib/vpnfwd /out/var/run/wireguard /out/tmp /out/bin \
 && ln -s busybox /out/bin/sh && ln -s ../vpnfwd /out/bin/wget \
 && chmod 1777 /out/tmp \
 && mkdir -p /out/etc/ssl/certs && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

FROM scratch
COPY --from=build /out/ /
COPY --from=busybox /bin/busybox /bin/busybox
# Hooks find wget (/bin/wget -> /vpnfwd) and sh here.
ENV PATH=/bin VPNFWD_STATE_DIR=/var/lib/vpnfwd
VOLUME /var/lib/vpnfwd
# Healthy while a forwarded port is held and not known dead (`vpnfwd port`
# asks the control API on loopback and exits 1 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/vpnfwd", "port"]
ENTRYPOINT ["/vpnfwd"]
CMD ["up"]
