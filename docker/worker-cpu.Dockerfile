# facecraft-worker for CPUs: the worker binary (dlib + ONNX Runtime engines), the model files and
# the ONNX Runtime library, on debian:bookworm-slim, as an unprivileged user under tini.
#
#   docker buildx bake -f docker-bake.hcl worker-cpu    # tags and arguments: docker-bake.hcl
#   docker build -f docker/worker-cpu.Dockerfile .       # the same, untagged
#
# Build arguments:
#   FACECRAFT_DETECTORS, FACECRAFT_SEGMENTATION_MODELS   which models the image ships and loads
#       (the worker's own settings, same names; the published images add u2net_human_seg)
#   MODELS_SOURCE=upstream|local   download the models from upstream with SHA-256 checks, or take
#       them from models/files (filled by scripts/fetch-models) for builds without internet
#   BINARY_SOURCE=builder|prebuilt  compile in the builder stage, or copy
#       target/release/facecraft-worker built on Debian 12 (`cargo build --release --locked
#       -p facecraft-worker`, with libdlib-dev 19.24 as on the runtime image)
#   RUST_IMAGE, DEBIAN_IMAGE   the base images; docker-bake.hcl pins them by digest
#       (BASE_IMAGES), the defaults here are the bare tags
ARG BINARY_SOURCE=builder
ARG MODELS_SOURCE=upstream
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# ---- builder: cargo-chef caches the dependency build (dlib's C++ included) in its own layer ----
FROM ${RUST_IMAGE} AS chef
# g++ for dlib-face-recognition's inline C++; dlib, OpenBLAS and LAPACK to link against.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ libdlib-dev libopenblas-dev liblapack-dev \
    && rm -rf /var/lib/apt/lists/*
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
    && rm -rf "${CARGO_HOME}/registry" "${CARGO_HOME}/git"
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
RUN cargo chef cook --release --locked -p facecraft-worker --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY contract contract
COPY shared shared
COPY pipeline pipeline
COPY api api
COPY worker worker
COPY cli cli
RUN cargo build --release --locked -p facecraft-worker \
    && install -D -m 0755 target/release/facecraft-worker /out/facecraft-worker

FROM scratch AS binary-prebuilt
COPY target/release/facecraft-worker /out/facecraft-worker

# A stage of this file, chosen by a build argument (not an image to pin).
# hadolint ignore=DL3006
FROM binary-${BINARY_SOURCE} AS binary

# ---- models: docker/models.sh picks the files the settings ask for and checks their SHA-256 ----
FROM ${DEBIAN_IMAGE} AS models-upstream
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl bzip2 unzip python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
COPY docker/models.sh /usr/local/bin/models.sh
RUN ORT_PACKAGE=onnxruntime models.sh upstream /models

FROM ${DEBIAN_IMAGE} AS models-local
ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
COPY docker/models.sh /usr/local/bin/models.sh
COPY models/files/ /src/models/
RUN ORT_PACKAGE=onnxruntime models.sh local /src/models /models

# hadolint ignore=DL3006
FROM models-${MODELS_SOURCE} AS models

# ---- runtime ----
FROM ${DEBIAN_IMAGE} AS runtime
# libdlib19.1 pulls in libdlib-data, whose only file is the 68-point landmark model (97 MB,
# trained on data that excludes commercial use): dpkg leaves that file out. The worker links
# libopenblas.so.0 itself; the pthread build provides BLAS/LAPACK for dlib as well.
# hadolint ignore=DL3008
RUN echo 'path-exclude=/usr/share/dlib/*' >/etc/dpkg/dpkg.cfg.d/facecraft-no-dlib-data \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini libdlib19.1 libopenblas0-pthread \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 facecraft \
    && useradd --system --uid 10001 --gid facecraft --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin facecraft
COPY --from=models /models /opt/facecraft/models
COPY --from=binary /out/facecraft-worker /usr/local/bin/facecraft-worker

ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
# The worker loads exactly what the image ships. Jobs run in parallel (one per CPU by default),
# and ONNX Runtime's threads per inference are the CPUs divided by that concurrency
# (FACECRAFT_ONNX_THREADS=auto), so that jobs do not fight over cores; OpenBLAS (dlib's CNN)
# stays single-threaded.
# glibc's malloc raises its mmap threshold after each large free, so U²-Net's freed buffers
# stay in the heap and count as resident; a fixed threshold hands them back. Peak RSS over
# several portraits: u2net 825 -> 615 MiB, u2netp unchanged (docs/operations.md, "Memory").
ENV FACECRAFT_MODELS_DIR=/opt/facecraft/models \
    ORT_DYLIB_PATH=/opt/facecraft/models/lib/libonnxruntime.so \
    FACECRAFT_DETECTORS=${FACECRAFT_DETECTORS} \
    FACECRAFT_SEGMENTATION_MODELS=${FACECRAFT_SEGMENTATION_MODELS} \
    FACECRAFT_LOG_FORMAT=json \
    FACECRAFT_WORKER_METRICS_ADDR=0.0.0.0:9091 \
    OPENBLAS_NUM_THREADS=1 \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576
USER 10001:10001
# /metrics (Prometheus) and /healthz on FACECRAFT_WORKER_METRICS_ADDR; the check asks /healthz
# through bash's /dev/tcp (the image has no curl).
EXPOSE 9091
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${FACECRAFT_WORKER_METRICS_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
# tini forwards SIGTERM: the worker stops reading, finishes in-flight jobs within
# FACECRAFT_DRAIN_TIMEOUT_SECS (60) and exits; give it a longer stop timeout than that.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/facecraft-worker"]
CMD ["serve"]

ARG DEBIAN_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="facecraft-worker (CPU)" \
      org.opencontainers.image.description="Facecraft worker: consumes portrait jobs from Redis Streams and runs the face pipeline on CPUs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${DEBIAN_IMAGE}"
