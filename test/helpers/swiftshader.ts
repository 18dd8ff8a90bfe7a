/**
 * WebGPU in Node for the tests: Dawn needs a Vulkan driver, and where the machine has no GPU of its own that is
 * Chromium's SwiftShader (Debian's chromium ships it; .ci/run installs it). Imported before anything starts Dawn,
 * it points Dawn there unless the environment names another driver. `available` says whether the driver is
 * present; in CI its absence is an error, not a skip.
 */
import {existsSync} from "node:fs";

const SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json";
process.env.VK_ICD_FILENAMES ??= SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= "/tmp";

export const available = existsSync(process.env.VK_ICD_FILENAMES);
if (!available && process.env.CI)
  throw new Error(`no Vulkan driver at ${process.env.VK_ICD_FILENAMES} (Debian's chromium ships SwiftShader's)`);

/**
 * onnxruntime-web's native WebGPU provider releases its WebGPU context — the device and every shader it compiled —
 * with its last session (`WebGpuContextFactory::ReleaseContext`), so a file that loads and disposes one model after
 * another compiles every shader again for each: most of such a file's time on SwiftShader. `holdNativeWebGPU()`
 * keeps a small model's session open until the function it answers is called (in afterAll): the models loaded
 * meanwhile find the shaders they share with earlier ones compiled. What each test checks is unchanged.
 */
export async function holdNativeWebGPU(): Promise<() => Promise<void>> {
  const {loadModel} = await import("../../src/node.js");
  const model = await loadModel("mini-llama", {runtime: "webgpu-native", leanDecode: false});
  return () => model.dispose();
}
