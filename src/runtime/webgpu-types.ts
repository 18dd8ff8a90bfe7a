/**
 * The few WebGPU types and constants the engine and the benchmark touch: TypeScript's DOM lib has no WebGPU,
 * and in Node the constants (GPUBufferUsage, GPUMapMode) are globals only once Dawn is set up.
 */
export interface GPULike {
  requestAdapter(options?: {powerPreference?: "low-power" | "high-performance"}): Promise<GPUAdapterLike | null>;
}

export interface GPUAdapterLike {
  readonly limits: Record<string, number> & {maxStorageBufferBindingSize: number; maxBufferSize: number};
  readonly features: ReadonlySet<string>;
  readonly info?: {
    vendor?: string;
    architecture?: string;
    device?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  };
  requestDevice(descriptor?: unknown): Promise<GPUDeviceLike>;
}

export interface GPUDeviceLike {
  readonly limits: {maxBufferSize: number};
  createBuffer(descriptor: {size: number; usage: number}): GPUBufferLike;
  createCommandEncoder(): {
    copyBufferToBuffer(from: unknown, fromOffset: number, to: unknown, toOffset: number, size: number): void;
    finish(): unknown;
  };
  readonly queue: {
    submit(commandBuffers: unknown[]): void;
    onSubmittedWorkDone(): Promise<void>;
    writeBuffer(buffer: unknown, offset: number, data: ArrayBufferView): void;
  };
}

export interface GPUBufferLike {
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}

/** GPUBufferUsage and GPUMapMode, as the WebGPU specification numbers them. */
export const BUFFER_USAGE = {MAP_READ: 0x0001, COPY_SRC: 0x0004, COPY_DST: 0x0008, STORAGE: 0x0080} as const;
export const MAP_MODE_READ = 0x0001;
