;; Guests that never stop on their own.
(module $spin
  (memory 1)
  ;; an infinite loop
  (func (export "spin") (loop $l (br $l)))
  ;; unbounded recursion, no loop at all
  (func $rec (export "recurse") (call $rec))
  ;; endless memory.fill of the whole page
  (func (export "fill") (loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536)) (br $l)))
  ;; count iterations: a loop of n iterations, to check accounting
  (func (export "iterate") (param $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))
  (func (export "noop"))
)
