# facecraft-worker for NVIDIA GPUs: the worker binary, the model files and ONNX Runtime's GPU build
# (onnxruntime-gpu 1.31: CUDA 13, cuDNN 9) on NVIDIA's CUDA 13.0 cuDNN *runtime* image
# (Ubuntu 24.04), as an unprivileged user under tini. Needs the NVIDIA container toolkit on the
# host (compose: `--profile gpu`; Kubernetes: the NVIDIA device plugin).
#
#   docker buildx bake -f docker-bake.hcl worker-gpu    # tags and arguments: docker-bake.hcl
#
# Build arguments as in worker-cpu.Dockerfile, plus CARGO_FEATURES: extra features of
# facecraft-worker to compile in (for a GPU-only engine, e.g. a future `cuda`). Base images:
# UBUNTU_IMAGE, DEBIAN_IMAGE, CUDA_IMAGE, pinned by digest in docker-bake.hcl (BASE_IMAGES).
# The builder is plain Ubuntu 24.04, the runtime's own distribution (glibc, libdlib): nothing
# here compiles CUDA code, ONNX Runtime is loaded at run time, so a CUDA devel image would only
# add gigabytes. A builder that links CUDA (tch) would start from
# nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04 instead.
ARG BINARY_SOURCE=builder
ARG MODELS_SOURCE=upstream
ARG UBUNTU_IMAGE=docker.io/library/ubuntu:24.04
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
ARG CUDA_IMAGE=docker.io/nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---- builder ----
FROM ${UBUNTU_IMAGE} AS chef
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gcc g++ libc6-dev \
        libdlib-dev libopenblas-dev liblapack-dev \
    && rm -rf /var/lib/apt/lists/*
ARG RUST_VERSION=1.95.0
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
RUN curl --proto '=https' --tlsv1.2 -fsSL https://sh.rustup.rs \
    | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}"
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
# The GPU image asks ONNX Runtime for its CUDA execution provider.
ARG CARGO_FEATURES="cuda"
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p facecraft-worker ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} \
        --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY contract contract
COPY shared shared
COPY pipeline pipeline
COPY api api
COPY worker worker
COPY cli cli
RUN cargo build --release --locked -p facecraft-worker ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} \
    && install -D -m 0755 target/release/facecraft-worker /out/facecraft-worker

# Built on Ubuntu 24.04 (not the Debian 12 binary of the CPU image: another glibc and libdlib).
FROM scratch AS binary-prebuilt
COPY target/release/facecraft-worker /out/facecraft-worker

# A stage of this file, chosen by a build argument (not an image to pin).
# hadolint ignore=DL3006
FROM binary-${BINARY_SOURCE} AS binary

# ---- models (see docker/models.sh), with ONNX Runtime's GPU build ----
FROM ${DEBIAN_IMAGE} AS models-upstream
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl bzip2 unzip python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
COPY docker/models.sh /usr/local/bin/models.sh
RUN ORT_PACKAGE=onnxruntime-gpu models.sh upstream /models

FROM ${DEBIAN_IMAGE} AS models-local
ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
COPY docker/models.sh /usr/local/bin/models.sh
COPY models/files/ /src/models/
RUN ORT_PACKAGE=onnxruntime-gpu models.sh local /src/models /models

# hadolint ignore=DL3006
FROM models-${MODELS_SOURCE} AS models

# ---- runtime: CUDA 13.0 + cuDNN 9 libraries, no compilers ----
FROM ${CUDA_IMAGE} AS runtime
# See worker-cpu.Dockerfile for the dlib data exclusion.
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
# ONNX Runtime finds its CUDA provider libraries beside itself (lib/).
ENV FACECRAFT_MODELS_DIR=/opt/facecraft/models \
    ORT_DYLIB_PATH=/opt/facecraft/models/lib/libonnxruntime.so \
    FACECRAFT_DETECTORS=${FACECRAFT_DETECTORS} \
    FACECRAFT_SEGMENTATION_MODELS=${FACECRAFT_SEGMENTATION_MODELS} \
    FACECRAFT_LOG_FORMAT=json \
    FACECRAFT_WORKER_METRICS_ADDR=0.0.0.0:9091 \
    OPENBLAS_NUM_THREADS=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
# /metrics (Prometheus) and /healthz on FACECRAFT_WORKER_METRICS_ADDR; the check asks /healthz
# through bash's /dev/tcp (the image has no curl).
EXPOSE 9091
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${FACECRAFT_WORKER_METRICS_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/facecraft-worker"]
CMD ["serve"]

ARG CUDA_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="facecraft-worker (GPU)" \
      org.opencontainers.image.description="Facecraft worker: consumes portrait jobs from Redis Streams and runs the face pipeline with ONNX Runtime on NVIDIA GPUs (CUDA 13)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${CUDA_IMAGE}"
