;; earshot's own WASM kernel: multiply f32 samples in place by a constant, 4 per
;; step with SIMD. It lives here because `npm run bench` (d) measured it ~4–13×
;; faster per 20 ms frame than the TypeScript loop, copies included; the biquad
;; measured 1.2–1.4× and stays TypeScript (the rule is ≥ 2×).
;; wasm/gain-kernel.ts embeds the binary compiled from this file; a test checks
;; they match (compile with wabt: `npm run build:kernels`).
(module
  (memory (export "memory") 1)
  ;; scale($p, $n, $g): samples [$p, $p + 4·$n) *= $g; $n must be a multiple of 4.
  (func (export "scale") (param $p i32) (param $n i32) (param $g f32)
    (local $end i32) (local $gv v128)
    (local.set $gv (f32x4.splat (local.get $g)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (v128.store (local.get $p) (f32x4.mul (v128.load (local.get $p)) (local.get $gv)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))
)
