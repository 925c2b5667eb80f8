# facecraft-api: the HTTP front (no models, no dlib, no ONNX Runtime). Runtime: distroless cc
# (glibc, libgcc, CA certificates; no shell, no package manager) with the binary, tini and a
# static busybox for the healthcheck, as an unprivileged user.
#
#   docker buildx bake -f docker-bake.hcl api    # tags and arguments: docker-bake.hcl
#   docker build -f docker/api.Dockerfile .       # the same, untagged
#
# BINARY_SOURCE=prebuilt copies target/release/facecraft-api instead of compiling it (builds
# without a registry, such as scripts/compose-smoke); build it on Debian 12 first, for the same
# glibc: `cargo build --release --locked -p facecraft-api`.
# RUST_IMAGE, DEBIAN_IMAGE, DISTROLESS_IMAGE: the base images; docker-bake.hcl pins them by
# digest (BASE_IMAGES), the defaults here are the bare tags.
ARG BINARY_SOURCE=builder
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
ARG DISTROLESS_IMAGE=gcr.io/distroless/cc-debian12:latest

# ---- builder: cargo-chef caches the dependency build in its own layer ----
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
    && rm -rf "${CARGO_HOME}/registry" "${CARGO_HOME}/git"
# Symbols stripped; set here so `cook` and `build` compile dependencies identically.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
WORKDIR /src

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY contract contract
COPY shared shared
COPY pipeline pipeline
COPY api api
COPY worker worker
COPY cli cli
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS binary-builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p facecraft-api --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY contract contract
COPY shared shared
COPY pipeline pipeline
COPY api api
# The whole workspace must be there for cargo to load it; only the api is compiled.
COPY worker worker
COPY cli cli
RUN cargo build --release --locked -p facecraft-api \
    && install -D -m 0755 target/release/facecraft-api /out/facecraft-api

# ---- prebuilt: a binary built outside (see the header) ----
FROM scratch AS binary-prebuilt
COPY target/release/facecraft-api /out/facecraft-api

# A stage of this file, chosen by a build argument (not an image to pin).
# hadolint ignore=DL3006
FROM binary-${BINARY_SOURCE} AS binary

# ---- runtime tools: what the distroless base lacks, as static binaries ----
FROM ${DEBIAN_IMAGE} AS runtime-tools
# busybox for the healthcheck's HTTP request (no bash, no curl in distroless); tini-static to
# forward signals and reap as PID 1. Both static: the runtime has nothing for them to link.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox-static tini \
    && install -D -m 0755 /bin/busybox /out/busybox \
    && install -D -m 0755 /usr/bin/tini-static /out/tini \
    && rm -rf /var/lib/apt/lists/*

# ---- runtime ----
# distroless cc, not debian:bookworm-slim (77.6 MB unpacked alone): the api links only glibc
# and libgcc_s, and its image stays under its 60 MB goal.
FROM ${DISTROLESS_IMAGE} AS runtime
COPY --from=runtime-tools /out/tini /usr/bin/tini
COPY --from=runtime-tools /out/busybox /usr/local/bin/busybox
COPY --from=binary /out/facecraft-api /usr/local/bin/facecraft-api

# Listen on every interface inside the container (the binary's own default is 127.0.0.1:8080).
ENV FACECRAFT_API_ADDR=0.0.0.0:8080 \
    FACECRAFT_LOG_FORMAT=json
# A numeric user: the same uid 10001 as the worker images and deploy/ (distroless's own
# `nonroot` is 65532).
USER 10001:10001
EXPOSE 8080
# Liveness through busybox's wget (exits 1 on any status but 2xx); port from FACECRAFT_API_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/busybox", "sh", "-c", "exec /usr/local/bin/busybox wget -q -O /dev/null \"http://127.0.0.1:${FACECRAFT_API_ADDR##*:}/healthz\""]
# tini reaps and forwards SIGTERM; the api then drains open requests (FACECRAFT_SHUTDOWN_TIMEOUT_SECS).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/facecraft-api"]

ARG DISTROLESS_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="facecraft-api" \
      org.opencontainers.image.description="Facecraft HTTP API: accepts portrait jobs, enqueues them on Redis Streams and serves their status" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${DISTROLESS_IMAGE}"
