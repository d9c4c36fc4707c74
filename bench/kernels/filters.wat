;; Candidate WASM kernels for two TS stages, to measure whether a kernel of our
;; own would pay (the rule: it goes into wasm/ only if it is >= 2x faster per
;; frame than the TS stage, copies in and out of WASM memory included).
(module
  (memory (export "memory") 1)

  ;; Biquad, transposed direct form II, f32 samples in place, f64 state at $s (z1, z2).
  (func (export "biquad") (param $p i32) (param $n i32)
        (param $b0 f64) (param $b1 f64) (param $b2 f64) (param $a1 f64) (param $a2 f64) (param $s i32)
    (local $z1 f64) (local $z2 f64) (local $x f64) (local $y f64) (local $end i32)
    (local.set $z1 (f64.load (local.get $s)))
    (local.set $z2 (f64.load offset=8 (local.get $s)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (f64.promote_f32 (f32.load (local.get $p))))
        (local.set $y (f64.add (f64.mul (local.get $b0) (local.get $x)) (local.get $z1)))
        (local.set $z1 (f64.sub (f64.add (f64.mul (local.get $b1) (local.get $x)) (local.get $z2)) (f64.mul (local.get $a1) (local.get $y))))
        (local.set $z2 (f64.sub (f64.mul (local.get $b2) (local.get $x)) (f64.mul (local.get $a2) (local.get $y))))
        (f32.store (local.get $p) (f32.demote_f64 (local.get $y)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $next)))
    (f64.store (local.get $s) (local.get $z1))
    (f64.store offset=8 (local.get $s) (local.get $z2)))
)
