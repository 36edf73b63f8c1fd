// onnx-proto is CommonJS (`module.exports = $root`), so Node's ESM loader only offers a default export.
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type { onnx as OnnxTypes } from 'onnx-proto';
