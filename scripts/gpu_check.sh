#!/usr/bin/env bash
# Every GPU check in one call, for a lent GPU machine: install what is missing there, run all GPU
# tests (cuda and gsplat backends against the torch reference), the cuda kernel tests under
# NVIDIA's compute-sanitizer (memcheck, racecheck), then time cuda against gsplat (and the
# reference) on the same stereo frames, the reuse ladder and the structured ladders. Each part has
# its own time limit so that the whole script stays under 9 minutes. It also measures each GPU
# backend's peak memory per tile intersection (scripts/isect_memory.py).
#
# The GPU machine has torch, CuPy, nvcc and ninja but no gsplat and no package registry, and it
# receives only the repository. Prepare two ignored folders here first (never commit them):
#   mkdir -p .whl .data && pip download --no-deps -d .whl gsplat==1.5.3 nvidia-cuda-sanitizer-api==13.5.25
#   cp ../shared/data/plant.splat .data/
# then run, with the device tool:  carry [".whl", ".data"], command "bash scripts/gpu_check.sh".
# compute-sanitizer: the machine's own (CUDA toolkit) when it has one, else the wheel's (the
# CUDA 13 wheel ships the complete tool; it needs a driver >= 580; the cu12 wheels lack its
# TreeLauncherSubreaper helper and cannot start a target). Logs go to $OUT (the device tool's
# output folder) or /tmp/gscache_gpu.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp/gscache_gpu}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
export GSCACHE_DATA=${GSCACHE_DATA:-$PWD/.data}

if ls .whl/gsplat-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/gscache_site .whl/gsplat-*.whl || exit 1
  export PYTHONPATH=/tmp/gscache_site${PYTHONPATH:+:$PYTHONPATH}
fi
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -z "$SANITIZER" ] && ls .whl/nvidia_cuda_sanitizer_api-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/gscache_sanitizer .whl/nvidia_cuda_sanitizer_api-*.whl
  SANITIZER=$(ls /tmp/gscache_sanitizer/nvidia/cu*/bin/compute-sanitizer 2>/dev/null | head -1)
fi
# Offline editable install (setuptools is already there); maps scenes/ and cuda/ into gscache.
python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOG/gpu.txt"
python3 -c "from gscache import backends; print('backends:', backends.available())" | tee -a "$LOG/gpu.txt"

echo "== GPU tests"
timeout 110 python3 -m pytest -q -rs -m cuda tests 2>&1 | tee "$LOG/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}

echo "== compute-sanitizer over the cuda kernel tests"
if [ -n "$SANITIZER" ]; then
  for tool in memcheck racecheck; do
    timeout 55 "$SANITIZER" --tool "$tool" --error-exitcode 99 --target-processes all \
      python3 -m pytest -q -x tests/backends/test_kernel_matrix.py tests/backends/test_stages.py \
      tests/backends/test_fovea_composite.py tests/backends/test_scale_projection.py \
      -k "cuda and not sim and not plant" 2>&1 | tail -25 | tee "$LOG/sanitizer_$tool.log"
    rc=${PIPESTATUS[0]}
    echo "compute-sanitizer $tool: exit $rc" | tee -a "$LOG/gpu.txt"
    [ "$rc" -eq 0 ] || tests_rc=1
  done
else
  echo "compute-sanitizer: not found (no CUDA toolkit tool, no nvidia-cuda-sanitizer-api wheel in .whl)" | tee -a "$LOG/gpu.txt"
fi

echo "== memory per tile intersection (the figure each backend refuses frames by; the README's table)"
timeout 60 python3 scripts/isect_memory.py --backends cuda,gsplat --gaussians 8000 --scales 0.1,0.2 \
  --json "$LOG/isect_memory.json" 2>&1 | tee "$LOG/isect_memory.log"

echo "== timings (median stereo-frame ms; speed-up over the first backend; PSNR against it)"
plant="$GSCACHE_DATA/plant.splat"
[ -f "$plant" ] || plant=demo
{
  timeout 30 python3 scripts/compare_backends.py "$plant" --device cuda --size 512x512 --backends torch,cuda,gsplat --frames 10
  timeout 30 python3 scripts/compare_backends.py "$plant" --device cuda --size 2048x2048 --backends torch,cuda,gsplat --frames 10
  timeout 30 python3 scripts/compare_backends.py city:1000000 --device cuda --size 2048x2048 --backends torch,cuda,gsplat --frames 10
  # The reuse ladder (issue 5) with both GPU backends, 120 frames of VR head motion.
  ladder=cuda/none,cuda/stereo,cuda/approx,cuda/D2,cuda/D4,cuda/D8,cuda/dynamic,gsplat/none,gsplat/stereo
  bench_scene=(); [ "$plant" = demo ] || bench_scene=("$plant")  # no scene argument: the demo scene
  timeout 45 gscache bench "${bench_scene[@]}" --device cuda --configs "$ladder" --frames 120 --size 512x512 --no-progress --out "$LOG/ladder"
  # Pixel reuse (issue 23) on cuda at 1024x1024, framed close as in a headset: the cuda kernels
  # of the warp, the tile statistics and the composite, and the reuse and quality they give.
  timeout 45 gscache bench "${bench_scene[@]}" --device cuda --configs cuda/none,cuda/dynamic,cuda/reproj-stereo,cuda/reproj \
    --frames 60 --size 1024x1024 --distance 0.5 --elevation 10 --no-progress --out "$LOG/reproj"
  # Foveation (issue 25) on cuda at 2048x2048 per eye, framed close: the composite and
  # scale_projection kernels, and whether the middle ring pays where the rasterizer's cost
  # follows pixels (on the cpu it does not).
  timeout 40 gscache bench "${bench_scene[@]}" --device cuda \
    --configs cuda/dynamic,cuda/dynamic+fov-medium,cuda/dynamic+fov-high,cuda/dynamic+fov-medium-ring \
    --frames 60 --size 2048x2048 --distance 0.5 --elevation 10 --no-progress --out "$LOG/foveation"
  # The structured ladder (issue 6) on the generated city at 2048x2048 per eye with cuda.
  gscache generate structured-city /tmp/gscache_city
  timeout 35 gscache bench /tmp/gscache_city --device cuda --ablation --backend cuda --trajectory altitude --frames 60 \
    --size 2048x2048 --no-progress --out "$LOG/city_altitude"
  timeout 35 gscache bench /tmp/gscache_city --device cuda --ablation --backend cuda --trajectory vr --distance 0.35 \
    --elevation 10 --frames 60 --size 2048x2048 --no-progress --out "$LOG/city_vr"
} 2>&1 | tee "$LOG/gpu_timings.log"
exit "$tests_rc"
