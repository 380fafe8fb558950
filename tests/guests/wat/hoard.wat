;; An exporter written as a core module, made a component by tests/build.rs: every export call
;; grows each of its extra memories by GROW pages and each of its tables by GROW_TABLE elements,
;; and fills them (so that the host's pages are touched, not only reserved). A grow that fails
;; (returns -1) traps, as an allocator that gives up would.
;; The build repeats the `;; each memory` and `;; each table` lines for as many of them as it
;; makes (`$n` is the number); this file alone has one of each.
(module
  (memory (export "memory") 1)
  (memory $m1 0) ;; each memory
  (table $t1 0 funcref) ;; each table
  (global $heap (mut i32) (i32.const 1024))

  ;; A bump allocator over memory 0 for the arguments of one call; each call starts it afresh.
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32) (local $end i32)
    (local.set $at
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (local.set $end (i32.add (local.get $at) (local.get 3)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size 0) (i32.const 65536)))
      (then
        (if (i32.eq (i32.const -1)
              (memory.grow 0 (i32.add (i32.shr_u (i32.sub (local.get $end)
                (i32.mul (memory.size 0) (i32.const 65536))) (i32.const 16)) (i32.const 1))))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $at))

  ;; `ok`: the result's discriminant, 0, at address 16 (zeroed, never written).
  (func $ok (result i32)
    (global.set $heap (i32.const 1024))
    (i32.const 16))

  (elem declare func $ok)
  (func $hoard
    (if (i32.eq (i32.const -1) (memory.grow $m1 (i32.const GROW))) (then unreachable)) (memory.fill $m1 (i32.const 0) (i32.const 1) (i32.mul (memory.size $m1) (i32.const 65536))) ;; each memory
    (if (i32.eq (i32.const -1) (table.grow $t1 (ref.null func) (i32.const GROW_TABLE))) (then unreachable)) (table.fill $t1 (i32.const 0) (ref.func $ok) (table.size $t1)) ;; each table
  )

  (func (export "wasmtel:exporter/exporter@VERSION#init")
    (param i32 i32 i32 i32 i32 i32) (result i32)
    (call $ok))
  (func (export "wasmtel:exporter/exporter@VERSION#export-batch") (param i32 i32) (result i32)
    (call $hoard) (call $ok))
  (func (export "wasmtel:exporter/exporter@VERSION#flush") (result i32)
    (call $ok))
  (func (export "wasmtel:exporter/exporter@VERSION#shutdown") (result i32)
    (call $ok))
)
