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
  args = {
    VERSION  = VERSION
    REVISION = GITHUB_SHA
  }
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
