// The echogarden WASM package ships an Emscripten factory without type declarations.
declare module '@echogarden/speex-resampler-wasm/simd' {
  const createModule: () => Promise<unknown>;
  export default createModule;
}
