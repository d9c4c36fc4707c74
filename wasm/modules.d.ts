// The echogarden WASM packages ship Emscripten factories without type declarations.
declare module '@echogarden/rnnoise-wasm' {
  const createModule: () => Promise<unknown>;
  export default createModule;
}
declare module '@echogarden/speex-resampler-wasm/simd' {
  const createModule: () => Promise<unknown>;
  export default createModule;
}
