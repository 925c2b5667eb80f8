# facecraft-api: the HTTP front (no models, no native libraries). Runtime: debian:bookworm-slim
# with the binary, CA certificates and tini, as an unprivileged user.
#
#   docker buildx bake -f docker-bake.hcl api    # tags and arguments: docker-bake.hcl
#   docker build -f docker/api.Dockerfile .       # the same, untagged
#
# BINARY_SOURCE=prebuilt copies target/release/facecraft-api instead of compiling it (builds
# without a registry, such as scripts/compose-smoke); build it on Debian 12 first, for the same
# glibc: `cargo build --release --locked -p facecraft-api`.
ARG BINARY_SOURCE=builder

# ---- builder: cargo-chef caches the dependency build in its own layer ----
FROM docker.io/library/rust:1.95.0-slim-bookworm AS chef
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

# ---- runtime ----
FROM docker.io/library/debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 facecraft \
    && useradd --system --uid 10001 --gid facecraft --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin facecraft
COPY --from=binary /out/facecraft-api /usr/local/bin/facecraft-api

# Listen on every interface inside the container (the binary's own default is 127.0.0.1:8080).
ENV FACECRAFT_API_ADDR=0.0.0.0:8080 \
    FACECRAFT_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
# Liveness through bash's /dev/tcp (the image has no curl); port from FACECRAFT_API_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${FACECRAFT_API_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
# tini reaps and forwards SIGTERM; the api then drains open requests (FACECRAFT_SHUTDOWN_TIMEOUT_SECS).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/facecraft-api"]

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="facecraft-api" \
      org.opencontainers.image.description="Facecraft HTTP API: accepts portrait jobs, enqueues them on Redis Streams and serves their status" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
