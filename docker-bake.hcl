# Facecraft images (docs/packaging.md):
#
#   docker buildx bake -f docker-bake.hcl                     api, worker-cpu and worker-gpu
#   docker buildx bake -f docker-bake.hcl worker-cpu --load   one, into the local image store
#   VERSION=1.2.0 IMAGE=acme/facecraft docker buildx bake -f docker-bake.hcl --push
#
# (`-f`: without it bake also reads compose.yaml, whose services share these targets' names.)
#
# One repository, one tag family per image:
#   REGISTRY/IMAGE:VERSION-api  :api
#   REGISTRY/IMAGE:VERSION-cpu  :cpu  :latest      (LATEST=false for a pre-release)
#   REGISTRY/IMAGE:VERSION-gpu  :gpu
# In CI (.github/workflows/publish.yml) docker/metadata-action fills the
# `docker-metadata-action` target that every image inherits (OCI labels and annotations:
# created, source, revision, version); the tags stay the ones above.
#
# docker.io/facecraft/facecraft is the one image name: compose.yaml, deploy/kustomization.yaml
# and publish.yml use it too (scripts/lint-packaging checks that they agree).

variable "REGISTRY" {
  default = "docker.io"
}

variable "IMAGE" {
  default = "facecraft/facecraft"
}

variable "VERSION" {
  default = "dev"
}

variable "LATEST" {
  default = true
}

# SBOM and SLSA provenance (max) attached to the images; publish.yml sets ATTEST=true. Off by
# default: the docker driver's image store behind `--load` cannot hold attestations.
variable "ATTEST" {
  default = false
}

# The base images, by digest, for the published builds. Each Dockerfile takes its FROM images
# from these build arguments, with the bare tag as default: `docker build`, compose and the
# local stand-ins of scripts/compose-smoke use whatever that tag names, bake the exact image.
# Keep each tag equal to the Dockerfiles' default (scripts/lint-packaging checks it); refresh
# the digests as docs/packaging.md ("Base images") says.
variable "BASE_IMAGES" {
  default = {
    RUST_IMAGE       = "docker.io/library/rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082"
    DEBIAN_IMAGE     = "docker.io/library/debian:bookworm-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171"
    DISTROLESS_IMAGE = "gcr.io/distroless/cc-debian12:latest@sha256:b7550f0b15838de14c564337eef2b804ba593ae55d81ca855421bd52f19bb480"
    UBUNTU_IMAGE     = "docker.io/library/ubuntu:24.04@sha256:f610ab94648195aa356059f5b41d6085c9d4d903c072430cdd1af7bdb646106b"
    CUDA_IMAGE       = "docker.io/nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:14d94b039cb94bbd5da559f303b46bc4b0d5d6c24ab1a9d7b186e566ed3400dc"
  }
}

# Set by GitHub Actions; the defaults serve local builds.
variable "GITHUB_REPOSITORY" {
  default = "facecraft/facecraft"
}

variable "GITHUB_SHA" {
  default = "unknown"
}

function "tags" {
  params = [variant, extra]
  result = concat(
    ["${REGISTRY}/${IMAGE}:${VERSION}-${variant}", "${REGISTRY}/${IMAGE}:${variant}"],
    [for t in extra : "${REGISTRY}/${IMAGE}:${t}"]
  )
}

group "default" {
  targets = ["api", "worker-cpu", "worker-gpu"]
}

# Placeholder, replaced in CI by the bake file docker/metadata-action writes.
target "docker-metadata-action" {}

target "_common" {
  inherits  = ["docker-metadata-action"]
  context   = "."
  platforms = ["linux/amd64"]
  # Every image gets every base: a Dockerfile ignores the arguments it does not declare.
  args = merge(BASE_IMAGES, {
    VERSION  = VERSION
    REVISION = GITHUB_SHA
  })
  attest = ATTEST ? ["type=provenance,mode=max", "type=sbom"] : []
  labels = {
    "org.opencontainers.image.source"   = "https://github.com/${GITHUB_REPOSITORY}"
    "org.opencontainers.image.url"      = "https://github.com/${GITHUB_REPOSITORY}"
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.revision" = GITHUB_SHA
    "org.opencontainers.image.licenses" = "Apache-2.0"
    "org.opencontainers.image.vendor"   = "Facecraft"
  }
}

target "api" {
  inherits   = ["_common"]
  dockerfile = "docker/api.Dockerfile"
  tags       = tags("api", [])
}

# The published worker images also ship and load u2net_human_seg (background removal trained
# on people), besides the default u2netp.
target "worker-cpu" {
  inherits   = ["_common"]
  dockerfile = "docker/worker-cpu.Dockerfile"
  args = {
    FACECRAFT_SEGMENTATION_MODELS = "u2netp,u2net_human_seg"
  }
  tags = tags("cpu", LATEST ? ["latest"] : [])
}

target "worker-gpu" {
  inherits   = ["_common"]
  dockerfile = "docker/worker-gpu.Dockerfile"
  args = {
    FACECRAFT_SEGMENTATION_MODELS = "u2netp,u2net_human_seg"
  }
  tags = tags("gpu", [])
}
