# facecraft-worker for NVIDIA GPUs: the worker built with ONNX Runtime's CUDA provider and
# libtorch (Cargo features cuda,torch), GFPGAN v1.4 for face restoration (FACECRAFT_RESTORER=
# gfpgan: the GPU lane's `restore=true` jobs), the model files, ONNX Runtime's GPU build
# (onnxruntime-gpu 1.31: CUDA 13, cuDNN 9), and libtorch 2.13 with the CUDA 13 and cuDNN 9
# libraries both load, from their PyPI wheels (torch, nvidia-*), as an unprivileged user under
# tini. Needs an NVIDIA driver for CUDA 13 (R580 or later) and the NVIDIA container toolkit on
# the host (compose: `--profile gpu`; Kubernetes: the NVIDIA device plugin); without a GPU,
# FACECRAFT_DEVICE=auto (the default) runs everything on the CPU.
#
#   docker buildx bake -f docker-bake.hcl --set worker-gpu.args.GFPGAN_WEIGHTS_SHA256=HEX worker-gpu
#
# Build arguments as in worker-cpu.Dockerfile (FACECRAFT_DETECTORS, FACECRAFT_SEGMENTATION_MODELS,
# MODELS_SOURCE, BINARY_SOURCE), and:
#   RUNTIME_BASE=ubuntu|debian|cuda   the runtime's base image. ubuntu (the default): plain
#       Ubuntu 24.04 (UBUNTU_IMAGE), the builder's distribution, with the CUDA libraries from the
#       nvidia-* wheels. debian: the same on debian:bookworm-slim (DEBIAN_IMAGE), for a binary
#       built on Debian 12 (BINARY_SOURCE=prebuilt, as scripts/compose-smoke --gpu does). cuda:
#       NVIDIA's CUDA 13.0 cuDNN runtime image (CUDA_IMAGE), ~3 GB more for nothing used: libtorch
#       finds the wheels' libraries through its RPATHs whatever the base (it is built against
#       cuDNN 9.20 and needs CUPTI, cuSPARSELt and NVSHMEM, which that image lacks), so they are
#       shipped on every base (docs/packaging.md, "The GPU image").
#   MODELS_SOURCE=upstream|local   also says where libtorch, the CUDA libraries and GFPGAN come
#       from. upstream: the wheels pinned in docker/models.sh, downloaded with hash checks, and
#       gfpgan-v1.4-b1.pt exported by scripts/export-gfpgan from TencentARC's GFPGANv1.4.pth.
#       local: models/libtorch (`docker/models.sh libtorch models/libtorch`), onnxruntime-gpu's
#       files in models/files/lib (`ORT_PACKAGE=onnxruntime-gpu docker/models.sh ort
#       models/files`) and models/files/gfpgan-v1.4-b1.pt with its sidecar.
#   GFPGAN_WEIGHTS_SHA256   required with MODELS_SOURCE=upstream: the SHA-256 of GFPGANv1.4.pth.
#       Upstream publishes none: pin the hash of a download you checked (docs/gpu.md).
#   GFPGAN_WEIGHTS_URL      where GFPGANv1.4.pth is downloaded from (TencentARC's release v1.3.0)
#   BINARY_SOURCE=prebuilt copies target/release/facecraft-worker-gpu: `cargo build --release -p
#       facecraft-worker --features cuda,torch` with LIBTORCH set as in docs/gpu.md, on the
#       runtime's distribution.
#   CARGO_FEATURES          features of facecraft-worker the builder compiles in (cuda,torch)
#   UBUNTU_IMAGE, DEBIAN_IMAGE, CUDA_IMAGE   the base images; docker-bake.hcl pins them by digest
#       (BASE_IMAGES), the defaults here are the bare tags
# The builder is plain Ubuntu 24.04: nothing here compiles CUDA code (libtorch and ONNX Runtime
# come prebuilt), so a CUDA devel image would only add gigabytes.
ARG BINARY_SOURCE=builder
ARG MODELS_SOURCE=upstream
ARG RUNTIME_BASE=ubuntu
ARG UBUNTU_IMAGE=docker.io/library/ubuntu:24.04
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
ARG CUDA_IMAGE=docker.io/nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---- libtorch and the CUDA libraries, laid out as in site-packages (docker/models.sh) ----
FROM ${DEBIAN_IMAGE} AS libtorch-upstream
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
COPY docker/models.sh /usr/local/bin/models.sh
RUN models.sh libtorch /libtorch

FROM scratch AS libtorch-local
COPY models/libtorch/ /libtorch/

# A stage of this file, chosen by a build argument (not an image to pin).
# hadolint ignore=DL3006
FROM libtorch-${MODELS_SOURCE} AS libtorch

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
# ONNX Runtime's CUDA execution provider and the libtorch engine (tch).
ARG CARGO_FEATURES="cuda,torch"
# libtorch where the runtime image has it, so that the rpath the build gives the binary
# ($LIBTORCH/lib, worker/build.rs) holds there too. LD_LIBRARY_PATH lets the linker find the
# CUDA libraries that libtorch_cuda.so needs.
COPY --from=libtorch /libtorch/ /opt/facecraft/site-packages/
ENV LIBTORCH=/opt/facecraft/site-packages/torch \
    LIBTORCH_CXX11_ABI=1 \
    LD_LIBRARY_PATH=/opt/facecraft/site-packages/torch/lib:/opt/facecraft/site-packages/nvidia/cu13/lib:/opt/facecraft/site-packages/nvidia/cudnn/lib
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

# Built with features cuda,torch on the runtime's distribution (the CPU image's binary has
# neither, and is built on Debian 12).
FROM scratch AS binary-prebuilt
COPY target/release/facecraft-worker-gpu /out/facecraft-worker

# hadolint ignore=DL3006
FROM binary-${BINARY_SOURCE} AS binary

# ---- GFPGAN v1.4 from the upstream weights (MODELS_SOURCE=upstream) ----
FROM ${DEBIAN_IMAGE} AS gfpgan-export
ARG GFPGAN_WEIGHTS_URL=https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth
ARG GFPGAN_WEIGHTS_SHA256=
RUN if [ -z "${GFPGAN_WEIGHTS_SHA256}" ]; then \
        echo "error: the build argument GFPGAN_WEIGHTS_SHA256 is required with MODELS_SOURCE=upstream:" \
            "the SHA-256 of ${GFPGAN_WEIGHTS_URL}, which upstream does not publish. Pin the hash" \
            "of a download you checked (docs/gpu.md), e.g. docker buildx bake -f docker-bake.hcl" \
            "--set worker-gpu.args.GFPGAN_WEIGHTS_SHA256=<hex> worker-gpu; or build with" \
            "MODELS_SOURCE=local" >&2; \
        exit 1; \
    fi
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/export-gfpgan /usr/local/bin/export-gfpgan
# export-gfpgan checks the weights' hash, traces the network in a venv of its pinned packages,
# loads the trace back and compares it with the eager network; neither the venv nor pip's cache
# is kept.
RUN curl -fsSL --retry 3 --retry-delay 5 -o /tmp/GFPGANv1.4.pth "${GFPGAN_WEIGHTS_URL}" \
    && PIP_NO_CACHE_DIR=1 export-gfpgan --weights /tmp/GFPGANv1.4.pth --weights-sha256 "${GFPGAN_WEIGHTS_SHA256}" \
        --dir /gfpgan --venv /tmp/export-venv --bench-runs 0 \
    && rm -rf /tmp/export-venv /tmp/GFPGANv1.4.pth

# ---- models (see docker/models.sh), with ONNX Runtime's GPU build and GFPGAN ----
FROM ${DEBIAN_IMAGE} AS models-upstream
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl bzip2 unzip python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
COPY docker/models.sh /usr/local/bin/models.sh
COPY --from=gfpgan-export /gfpgan/ /src/gfpgan/
RUN ORT_PACKAGE=onnxruntime-gpu FACECRAFT_RESTORER=gfpgan GFPGAN_DIR=/src/gfpgan models.sh upstream /models

FROM ${DEBIAN_IMAGE} AS models-local
ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
COPY docker/models.sh /usr/local/bin/models.sh
COPY models/files/ /src/models/
RUN ORT_PACKAGE=onnxruntime-gpu FACECRAFT_RESTORER=gfpgan models.sh local /src/models /models

# hadolint ignore=DL3006
FROM models-${MODELS_SOURCE} AS models

# ---- runtime bases (RUNTIME_BASE) ----
# The CUDA libraries of the wheels need a driver for CUDA 13: the NVIDIA container toolkit
# refuses to start the container on an older one, saying so (NVIDIA's image sets its own).
FROM ${UBUNTU_IMAGE} AS runtime-ubuntu
ARG UBUNTU_IMAGE
ENV NVIDIA_REQUIRE_CUDA="cuda>=13.0"
LABEL org.opencontainers.image.base.name="${UBUNTU_IMAGE}"

FROM ${DEBIAN_IMAGE} AS runtime-debian
ARG DEBIAN_IMAGE
ENV NVIDIA_REQUIRE_CUDA="cuda>=13.0"
LABEL org.opencontainers.image.base.name="${DEBIAN_IMAGE}"

FROM ${CUDA_IMAGE} AS runtime-cuda
ARG CUDA_IMAGE
LABEL org.opencontainers.image.base.name="${CUDA_IMAGE}"

# ---- runtime: no compilers, no Python ----
# hadolint ignore=DL3006
FROM runtime-${RUNTIME_BASE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# See worker-cpu.Dockerfile for the dlib data exclusion.
# hadolint ignore=DL3008
RUN echo 'path-exclude=/usr/share/dlib/*' >/etc/dpkg/dpkg.cfg.d/facecraft-no-dlib-data \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini libdlib19.1 libopenblas0-pthread \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 facecraft \
    && useradd --system --uid 10001 --gid facecraft --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin facecraft
# The CUDA libraries beside torch/lib, as in site-packages: libtorch's RPATHs
# ($ORIGIN/../../nvidia/*/lib) find them there. One layer per folder, the least often changed
# first: pulls fetch layers in parallel.
COPY --from=libtorch /libtorch/nvidia/cu13 /opt/facecraft/site-packages/nvidia/cu13
COPY --from=libtorch /libtorch/nvidia/cudnn /opt/facecraft/site-packages/nvidia/cudnn
COPY --from=libtorch /libtorch/nvidia/nccl /opt/facecraft/site-packages/nvidia/nccl
COPY --from=libtorch /libtorch/nvidia/cusparselt /opt/facecraft/site-packages/nvidia/cusparselt
COPY --from=libtorch /libtorch/nvidia/nvshmem /opt/facecraft/site-packages/nvidia/nvshmem
COPY --from=libtorch /libtorch/torch/lib /opt/facecraft/site-packages/torch/lib
COPY --from=models /models /opt/facecraft/models
COPY --from=binary /out/facecraft-worker /usr/local/bin/facecraft-worker

ARG FACECRAFT_DETECTORS=hog,cnn,retinaface
ARG FACECRAFT_SEGMENTATION_MODELS=u2netp
# ONNX Runtime finds its CUDA provider libraries beside itself (lib/); the provider finds the
# CUDA libraries, and a prebuilt binary (whose rpath names its build machine's libtorch) finds
# libtorch, through LD_LIBRARY_PATH. The driver's libcuda.so.1 comes from the container toolkit.
# glibc's malloc raises its mmap threshold after each large free, so U²-Net's freed buffers
# stay in the heap and count as resident; a fixed threshold hands them back. Peak RSS over
# several portraits: u2net 825 -> 615 MiB, u2netp unchanged (docs/operations.md, "Memory").
ENV FACECRAFT_MODELS_DIR=/opt/facecraft/models \
    ORT_DYLIB_PATH=/opt/facecraft/models/lib/libonnxruntime.so \
    LD_LIBRARY_PATH=/opt/facecraft/site-packages/torch/lib:/opt/facecraft/site-packages/nvidia/cu13/lib:/opt/facecraft/site-packages/nvidia/cudnn/lib \
    FACECRAFT_DETECTORS=${FACECRAFT_DETECTORS} \
    FACECRAFT_SEGMENTATION_MODELS=${FACECRAFT_SEGMENTATION_MODELS} \
    FACECRAFT_RESTORER=gfpgan \
    FACECRAFT_LOG_FORMAT=json \
    FACECRAFT_WORKER_METRICS_ADDR=0.0.0.0:9091 \
    OPENBLAS_NUM_THREADS=1 \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Every shared library the worker, libtorch and ONNX Runtime need is in the image, and every
# symbol the worker's libraries take from each other is there (ldd -r), but the driver's
# libcuda.so.1, which the container toolkit adds: a library left out fails the build, not a start.
RUN problems=$( { ldd -r /usr/local/bin/facecraft-worker 2>&1 | sed -n 's|^undefined symbol: |facecraft-worker: undefined symbol: |p'; \
        for f in /usr/local/bin/facecraft-worker /opt/facecraft/models/lib/*.so* \
            /opt/facecraft/site-packages/torch/lib/*.so* /opt/facecraft/site-packages/nvidia/*/lib/*.so*; do \
            ldd "$f" | sed -n "s|^[[:space:]]*\([^ ]*\) => not found.*|$f needs \1|p"; \
        done; } | grep -v ' needs libcuda\.so\.1$' || true) \
    && if [ -n "$problems" ]; then printf 'error: shared libraries or symbols not found:\n%s\n' "$problems" >&2; exit 1; fi
USER 10001:10001
# /metrics (Prometheus) and /healthz on FACECRAFT_WORKER_METRICS_ADDR; the check asks /healthz
# through bash's /dev/tcp (the image has no curl).
EXPOSE 9091
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${FACECRAFT_WORKER_METRICS_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/facecraft-worker"]
CMD ["serve"]

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="facecraft-worker (GPU)" \
      org.opencontainers.image.description="Facecraft worker: consumes portrait jobs from Redis Streams and runs the face pipeline and GFPGAN face restoration with ONNX Runtime and libtorch on NVIDIA GPUs (CUDA 13)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
