;; Covers what the rewriter remaps or instruments: an import before the
;; defined functions, loops with and without params (multi-value block
;; types), br_table, call_indirect, all 8 element segment forms, ref.func in
;; code and in a global initializer, a start function, memory.fill/copy,
;; data.drop and the name section (wat2wasm --debug-names).
(module $features
  (import "env" "add1" (func $add1 (param i32) (result i32)))
  (type $binop (func (param i32 i32) (result i32)))
  (type $countdown (func (param i32 i32) (result i32 i32)))
  (memory (export "memory") 1)
  (table $t0 8 funcref)
  (table $t1 8 funcref)
  (global $started (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $mul))

  (func $add (type $binop) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $binop) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $binop) (i32.mul (local.get 0) (local.get 1)))
  (func $xor (type $binop) (i32.xor (local.get 0) (local.get 1)))
  (func $and (type $binop) (i32.and (local.get 0) (local.get 1)))
  (func $or (type $binop) (i32.or (local.get 0) (local.get 1)))
  (func $shl (type $binop) (i32.shl (local.get 0) (local.get 1)))
  (func $rotl (type $binop) (i32.rotl (local.get 0) (local.get 1)))

  ;; form 0: active, table 0, function indices
  (elem (i32.const 0) $add $sub)
  ;; form 1: passive, function indices
  (elem $p1 func $mul $xor)
  ;; form 2: active, explicit table, function indices
  (elem (table $t1) (i32.const 0) func $and $or)
  ;; form 3: declarative, function indices (allows ref.func in code)
  (elem declare func $shl)
  ;; form 4: active, table 0, expressions
  (elem (i32.const 2) funcref (ref.func $and) (ref.null func))
  ;; form 5: passive, expressions
  (elem $p5 funcref (ref.func $rotl) (ref.func $add) (ref.null func))
  ;; form 6: active, explicit table, expressions
  (elem (table $t1) (i32.const 2) funcref (ref.func $xor) (ref.func $mul) (ref.null func))
  ;; form 7: declarative, expressions
  (elem declare funcref (ref.func $rotl) (ref.null func))

  (data $d "tollgate")

  (func $start (global.set $started (call $add1 (i32.const 41))))
  (start $start)

  (func (export "started") (result i32) (global.get $started))

  ;; sum of i*i for i < n: a loop without params
  (func (export "sumsq") (param $n i64) (result i64)
    (local $i i64) (local $s i64)
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i64.add (local.get $s) (i64.mul (local.get $i) (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $s))

  ;; a loop with params: sums n..1 carrying [n acc] on the stack
  (func (export "countdown") (param $n i32) (result i32)
    (local $acc i32)
    local.get $n
    i32.const 0
    loop $l (type $countdown)
      local.set $acc
      local.tee $n
      local.get $acc
      i32.add
      local.set $acc
      local.get $n
      i32.const 1
      i32.sub
      local.get $acc
      local.get $n
      i32.const 1
      i32.gt_s
      br_if $l
    end
    local.set $acc
    drop
    local.get $acc)

  ;; a loop with a single result type and br_table dispatch
  (func (export "dispatch") (param $n i32) (result i32)
    (local $acc i32) (local $i i32)
    (loop $l (result i32)
      (block $b2 (block $b1 (block $b0
        (br_table $b0 $b1 $b2 (i32.rem_u (local.get $i) (i32.const 3))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 1))) (br $b2))
        (local.set $acc (i32.mul (local.get $acc) (i32.const 3))) (br $b2))
      (local.set $acc (i32.xor (local.get $acc) (i32.const 0x55)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))
      (local.get $acc)))

  ;; call_indirect through both tables, after table.init of passive segments
  (func (export "indirect") (param $a i32) (param $b i32) (result i32)
    (local $r i32)
    (table.init $t0 $p1 (i32.const 4) (i32.const 0) (i32.const 2))
    (table.init $t0 $p5 (i32.const 6) (i32.const 0) (i32.const 2))
    (table.set $t1 (i32.const 4) (ref.func $shl))
    (table.set $t1 (i32.const 5) (global.get $fref))
    (local.set $r (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 0)))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 1))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 2))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 4))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 5))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 6))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t0 (type $binop) (local.get $a) (local.get $b) (i32.const 7))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t1 (type $binop) (local.get $a) (local.get $b) (i32.const 0))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t1 (type $binop) (local.get $a) (local.get $b) (i32.const 1))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t1 (type $binop) (local.get $a) (local.get $b) (i32.const 2))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t1 (type $binop) (local.get $a) (local.get $b) (i32.const 3))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t1 (type $binop) (local.get $a) (local.get $b) (i32.const 4))))
    (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 31))
      (call_indirect $t1 (type $binop) (local.get $a) (local.get $b) (i32.const 5))))
    (local.get $r))

  ;; bulk memory: fill, init, copy, drop; returns a checksum of the bytes
  (func (export "bulk") (param $n i32) (result i32)
    (local $i i32) (local $s i32)
    (memory.fill (i32.const 0) (i32.const 7) (local.get $n))
    (memory.init $d (i32.const 3) (i32.const 0) (i32.const 8))
    (memory.copy (i32.const 100) (i32.const 0) (local.get $n))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.add (local.get $n) (i32.const 100))))
        (local.set $s (i32.add (i32.mul (local.get $s) (i32.const 33))
          (i32.load8_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))

  (func (export "dropdata") (data.drop $d))

  ;; recursion without loops: fib
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  ;; sign extension and saturating truncation
  (func (export "numeric") (param $x f64) (result i64)
    (i64.add (i64.trunc_sat_f64_s (local.get $x))
             (i64.extend8_s (i64.const 0xff))))
)
