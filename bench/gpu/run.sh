#!/usr/bin/env bash
# On the GPU machine, from the repository root, with `.gpu/` carried (bench/gpu/pack.sh):
#   bash .gpu/run.sh
# unpacks the bundle, checks that Dawn sees the GPU, and runs `bench --gpu` (with LMW_GPU_PARITY=1: bench/gpu/parity.ts): onnxruntime-web's WebGPU backend
# in Node against onnxruntime-node's CPU path. Results and the log land in $OUT (the device tool brings them back).
set -uo pipefail
OUT=${OUT:-/tmp/lmw-out}; mkdir -p "$OUT"
here=$(pwd); w=/tmp/lmw-gpu; rm -rf $w && mkdir -p $w
if command -v xz >/dev/null; then tar -C $w -xJf .gpu/pack.tar.xz
else python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu/pack.tar.xz $w; fi
cd $w
for f in debs/*.deb; do dpkg -x "$f" /; done; ldconfig
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd && break
done
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json; [ -f $egl ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
export XDG_RUNTIME_DIR=/tmp LMW_MODELS=$w/models LMW_BENCH_ONE=$w/bench/one.mjs
# Each child writes its result under $TMPDIR/lmw-bench-*; a run cut short leaves them there (partial.tgz).
export TMPDIR=/tmp/lmw-scratch; rm -rf $TMPDIR; mkdir -p $TMPDIR
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee $OUT/gpu.txt
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}" | tee -a $OUT/gpu.txt
probe() { ./node --input-type=module -e '
const {create, globals} = await import("webgpu"); Object.assign(globalThis, globals);
const a = await create([]).requestAdapter({powerPreference: "high-performance"});
console.log("dawn adapter:", a ? [a.info.vendor, a.info.architecture, a.info.device, a.info.description].join(" / ") : "none");' 2>&1 | grep -v "^\s*at "; }
found=$(probe); echo "$found" | tee -a $OUT/gpu.txt
if echo "$found" | grep -q "adapter: none" && [ -n "${VK_DRIVER_FILES:-}" ]; then
  unset VK_DRIVER_FILES VK_ICD_FILENAMES; found=$(probe); echo "without VK_DRIVER_FILES: $found" | tee -a $OUT/gpu.txt
fi
if [ -n "${LMW_GPU_PARITY:-}" ]; then # every family's fixture against its references on this GPU, instead of the bench
  timeout ${LMW_BENCH_TIMEOUT:-480} ./node bench/gpu/parity.mjs 2>&1 | tee $OUT/parity.txt; exit
fi
timeout ${LMW_BENCH_TIMEOUT:-480} ./node bench/bench.mjs --gpu ${LMW_BENCH_ARGS:-} 2>&1 | grep -v "^npm warn" | tee $OUT/bench.log
cp bench/results-gpu.json docs/data/bench-results-gpu.json docs/performance.md "$OUT/" 2>/dev/null
[ -f bench/results-gpu.json ] || tar -C $TMPDIR -czf "$OUT/partial.tgz" .
ls -la "$OUT"
