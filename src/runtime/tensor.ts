/** An activation or a weight: float32 values, row-major, with the PyTorch shape (batch included). */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}
