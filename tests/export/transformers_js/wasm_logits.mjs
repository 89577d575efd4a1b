// node wasm_logits.mjs MODEL.onnx INPUT.bin BATCH SIZE: prints the logits that onnxruntime-web's WebAssembly
// backend (what a browser runs) gives for the float32 pixel values in INPUT.bin, as JSON.
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-web";

const [model, input, batch, size] = process.argv.slice(2);
const shape = [Number(batch), 3, Number(size), Number(size)];
const bytes = readFileSync(input);
const pixels = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
const session = await ort.InferenceSession.create(readFileSync(model), { executionProviders: ["wasm"] });
const { logits } = await session.run({ pixel_values: new ort.Tensor("float32", pixels, shape) });
console.log(JSON.stringify({ dims: logits.dims, data: Array.from(logits.data) }));
