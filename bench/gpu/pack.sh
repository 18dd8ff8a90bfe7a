#!/usr/bin/env bash
# Packs the benchmark for a GPU machine that has neither the npm registry nor this repository's
# node_modules: `.gpu/` (ignored by git) gets the bundled bench (esbuild, code-split so playwright stays out),
# the three native packages it loads (onnxruntime-node, onnxruntime-web, webgpu; Linux x64 files only), this
# Node, the models it measures, and Debian's Vulkan loader. bench/gpu/run.sh runs it there.
#
#   bash bench/gpu/pack.sh && du -sh .gpu        (the device tool carries at most 64 MiB)
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu/bench .gpu/node_modules .gpu/models .gpu/debs
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude

npx esbuild bench/bench.ts bench/one.ts bench/gpu/parity.ts --bundle --platform=node --format=esm --splitting --outdir=.gpu/bench \
  --out-extension:.js=.mjs --external:onnxruntime-node --external:onnxruntime-web --external:webgpu \
  --external:playwright-core --log-level=warning \
  --banner:js="import {createRequire as __cr} from 'node:module'; const require = __cr(import.meta.url);"

nm=node_modules
mkdir -p .gpu/$nm/onnxruntime-node .gpu/$nm/onnxruntime-common .gpu/$nm/onnxruntime-web/dist .gpu/$nm/webgpu/dist
cp -r $nm/onnxruntime-common/. .gpu/$nm/onnxruntime-common/
(cd $nm/onnxruntime-node && cp -r --parents package.json dist lib bin/napi-v6/linux/x64 "$OLDPWD/.gpu/$nm/onnxruntime-node/")
cp $nm/onnxruntime-web/package.json .gpu/$nm/onnxruntime-web/
cp $nm/onnxruntime-web/dist/{ort.node.min.mjs,ort.bundle.min.mjs,ort-wasm-simd-threaded.jsep.wasm,ort.webgpu.bundle.min.mjs,ort-wasm-simd-threaded.asyncify.wasm} .gpu/$nm/onnxruntime-web/dist/
(cd $nm/webgpu && cp -r --parents package.json index.js dist/linux-x64 "$OLDPWD/.gpu/$nm/webgpu/")
cp "$(command -v node)" .gpu/node

# Models: the fixtures (their weights, and the references bench/gpu/parity.ts checks against) and the full-size
# structures' configs and tokenizers. The fixtures are test/helpers/fixture-list.ts's, the list every test takes.
fixtures=$(npx tsx -e 'import {FIXTURES} from "./test/helpers/fixture-list.ts"; console.log(FIXTURES.join(" "))')
for m in $fixtures; do
  mkdir -p .gpu/models/$m && cp test/fixtures/$m/{config.json,tokenizer*.json,model.safetensors,reference.json,reference.safetensors} .gpu/models/$m/
done
for m in gpt2 HuggingFaceTB/SmolLM2-135M; do mkdir -p .gpu/models/${m#*/} && cp data/models/$m/*.json .gpu/models/${m#*/}/; done

# Debian's Vulkan loader (Dawn dlopens libvulkan.so.1) and libglvnd, which NVIDIA's Vulkan driver (libGLX_nvidia)
# needs: the image has neither. run.sh unpacks them.
(cd .gpu/debs && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1) || echo "note: could not download the Vulkan loader and libglvnd (apt); run.sh will rely on the image's"
cp bench/gpu/run.sh .gpu/
[ -f docs/performance.md ] && mkdir -p .gpu/docs && cp docs/performance.md .gpu/docs/
rm -f .gpu/bench/*.map
XZ_OPT=-9T0 tar -C .gpu -cJf .gpu.tar.xz . && rm -rf .gpu && mkdir .gpu && mv .gpu.tar.xz .gpu/pack.tar.xz
cp bench/gpu/run.sh .gpu/
du -sh .gpu/pack.tar.xz
