"""Fused CPU row passes of the Sinkhorn solver, compiled by numba (no C compiler needed).

Why by hand: on CPU a Sinkhorn iteration is memory-bound, and torch needs two mat-vecs
(plus ~8 elementwise passes and an exp when the kernel is rebuilt) per chunk. One loop per
row reads each kernel row once while it sits in L1: build it from the float16/32
log-probs (exp included), dot it with rho, add row/s into the column sums. No library
offers that fusion.

Same results on every machine, whatever its instruction set or core count:
- numba compiles without fast-math, so LLVM neither reorders float sums nor contracts
  multiply-adds on its own: whatever vector width it picks for an elementwise loop, the
  result is the sequential one. Where a multiply-add is wanted it is an explicit fma,
  which is exactly rounded on every machine. Sums are written as 8 independent
  accumulators added in a fixed order (the row dot product as one ``<8 x float>``
  accumulator, ``_fma_lanes8``: the same arithmetic, vectorised).
- exp is a fixed polynomial (Cody-Waite reduction, Cephes' degree-5 minimax fit, error
  below 1.5 ulp) made of IEEE basic operations, not the host's libm (whose ISA-dispatched
  variants may round differently); float16 is converted exactly with integer bit moves.
- Rows are cut into fixed blocks of ``BLOCK_ROWS``; each block's column sums are kept
  apart and added in block order, so the thread count never changes a rounding.

Compiled in memory on first use in each process (``cache=False``), never cached on disk:
numba's cache (``__pycache__`` beside this file, else ``~/.cache/numba`` or
``NUMBA_CACHE_DIR``, shared by every process that can write there) is a pickle that numba
loads with no owner or content check, so a planted file would run code, and a zero-byte
or truncated index makes every later call raise (EOFError) instead of recompiling.
Compiling costs ~4 s of CPU once per process. The kernels release the GIL, so Python
threads run row ranges in parallel.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

BLOCK_ROWS = 256  # rows whose column sums are kept together (fixed: thread-count independent)
FLUSH_ROWS = 64  # rows summed in float32 before adding to the block's float64 column sums
FLOOR = np.float32(-87.0)  # exp() of anything lower is subnormal in float32 (and ~10x slower)

_JIT = dict(nogil=True, error_model="numpy", boundscheck=False, fastmath=False, cache=False)
_U = np.uint32
_F = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F(1.4426950408889634), _F(0.693359375), _F(-2.12194440e-4)
_P0, _P1, _P2, _P3, _P4, _P5 = (_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                                 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_ONE, _HALF, _MIN_NORMAL_F16 = _F(1.0), _F(0.5), _F(6.103515625e-05)
# Kernel rows are kept scaled by 2^64 (exact: a power of two): exp(FLOOR) * 2^64 ~ 3e-19, so
# no product of a floored entry (rho >= e^-30, 1/s >= 1/K) falls below float32's normal
# range. Subnormal operands or results cost ~20x in the x86 FMA/multiply units, and most
# entries of a lambda = 25 kernel sit at the floor.
SCALE_EXP = 64
_SCALE, _UNSCALE, _UNSCALE_F32 = _F(2.0 ** SCALE_EXP), 2.0 ** -SCALE_EXP, _F(2.0 ** -SCALE_EXP)


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma): defined exactly, so the same on every machine
    (libm's fmaf where the CPU has no FMA unit), and one instruction instead of two."""
    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@njit(**_JIT)
def _half_row(src, e, lm, lam, gc):
    """e = lam * (float(src) - lm) + gc for IEEE half bits ``src`` (exact conversion:
    normal, subnormal, zero, inf, nan), in two vectorisable loops."""
    k = src.shape[0]
    bits = e.view(np.uint32)
    for j in range(k):
        h = _U(src[j])
        ex = h & _U(0x7C00)
        # rebias the exponent (15 -> 127); subnormals get 2^-14 added, removed below
        off = _U(113 << 23) if ex == _U(0) else (_U(224 << 23) if ex == _U(0x7C00) else _U(112 << 23))
        bits[j] = (((h & _U(0x7FFF)) << _U(13)) + off) | ((h & _U(0x8000)) << _U(16))
    for j in range(k):
        v = e[j]
        if (_U(src[j]) & _U(0x7C00)) == _U(0):
            v = v - _MIN_NORMAL_F16 if v > 0 else v + _MIN_NORMAL_F16
        e[j] = lam * (v - lm) + gc[j]


@njit(**_JIT)
def _float_row(src, e, lm, lam, gc):
    for j in range(src.shape[0]):
        e[j] = lam * (src[j] - lm) + gc[j]


@njit(**_JIT)
def _row_max(e):
    k = e.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = e[0]
    j = 0
    while j + 8 <= k:
        m0 = max(m0, e[j]); m1 = max(m1, e[j + 1]); m2 = max(m2, e[j + 2]); m3 = max(m3, e[j + 3])
        m4 = max(m4, e[j + 4]); m5 = max(m5, e[j + 5]); m6 = max(m6, e[j + 6]); m7 = max(m7, e[j + 7])
        j += 8
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    while j < k:
        m = max(m, e[j])
        j += 1
    return m


@njit(**_JIT)
def _exp_shifted(e, m, scale):
    """e = 2^SCALE_EXP * exp(max(e - m, FLOOR)); ``scale`` is a uint32 scratch row for the
    2^n factors."""
    k = e.shape[0]
    for j in range(k):
        d = max(e[j] - m, FLOOR)
        t = np.floor(d * _LOG2E + _HALF)  # d = t ln2 + r, |r| <= ln2 / 2
        r = d - t * _LN2_HI - t * _LN2_LO
        e[j] = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * (r * r) + r + _ONE
        scale[j] = _U(np.int32(t) + (127 + SCALE_EXP)) << _U(23)  # 2^(t + 64) as float32 bits
    factor = scale.view(np.float32)
    for j in range(k):
        e[j] *= factor[j]


def _is_row(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float32


@intrinsic
def _fma_lanes8(typingctx, e, rho, k, e_addr, rho_addr):
    """sum_j e[j] * rho[j] over j < 8 * (k // 8) as 8 lanes (lane l takes j = l mod 8, one
    fma each, in order), then ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)).

    Why LLVM IR by hand: without fast-math LLVM does not vectorise this fixed-order
    reduction written as 8 scalar accumulators (it stays scalar ``vfmadd231ss``); one
    ``<8 x float>`` accumulator with ``llvm.fma.v8f32`` is the same arithmetic, lane for
    lane, in one vector instruction (2-3x faster here, identical bits).

    Public APIs only (no version guard needed): numba's ``@intrinsic`` and llvmlite's IR
    builder. The rows come in twice: as arrays, only so the typing can insist on contiguous
    float32 (the loads below assume stride 1), and as their data addresses
    (``arr.ctypes.data``), which the code reads; numba's array layout (``make_array``,
    ``cgutils``) is never touched."""
    if not (_is_row(e) and _is_row(rho) and all(isinstance(a, types.Integer) for a in (k, e_addr, rho_addr))):
        return None

    def codegen(context, builder, signature, args):
        k, e_addr, r_addr = args[2], args[3], args[4]
        f32p, v8 = ir.FloatType().as_pointer(), ir.VectorType(ir.FloatType(), 8)
        mod = builder.module  # declared once per module (llvmlite's declare_intrinsic knows no vectors)
        fma = mod.globals.get("llvm.fma.v8f32") or ir.Function(mod, ir.FunctionType(v8, [v8, v8, v8]), "llvm.fma.v8f32")
        e_ptr, r_ptr = builder.inttoptr(e_addr, f32p), builder.inttoptr(r_addr, f32p)
        n = builder.sdiv(k, ir.Constant(k.type, 8))
        entry = builder.block
        cond = builder.append_basic_block("lanes8.cond")
        body = builder.append_basic_block("lanes8.body")
        end = builder.append_basic_block("lanes8.end")
        builder.branch(cond)
        builder.position_at_end(cond)
        i = builder.phi(k.type)
        acc = builder.phi(v8)
        i.add_incoming(ir.Constant(k.type, 0), entry)
        acc.add_incoming(ir.Constant(v8, [0.0] * 8), entry)
        builder.cbranch(builder.icmp_signed("<", i, n), body, end)
        builder.position_at_end(body)
        off = builder.mul(i, ir.Constant(k.type, 8))
        a = builder.load(builder.bitcast(builder.gep(e_ptr, [off]), v8.as_pointer()), align=4)
        b = builder.load(builder.bitcast(builder.gep(r_ptr, [off]), v8.as_pointer()), align=4)
        acc.add_incoming(builder.call(fma, [a, b, acc]), body)
        i.add_incoming(builder.add(i, ir.Constant(k.type, 1)), body)
        builder.branch(cond)
        builder.position_at_end(end)
        x = [builder.extract_element(acc, ir.Constant(ir.IntType(32), j)) for j in range(8)]
        return builder.fadd(builder.fadd(builder.fadd(x[0], x[1]), builder.fadd(x[2], x[3])),
                            builder.fadd(builder.fadd(x[4], x[5]), builder.fadd(x[6], x[7])))

    return types.float32(e, rho, k, e_addr, rho_addr), codegen


@njit(**_JIT)
def _dot(e, rho):
    k = e.shape[0]
    s = _fma_lanes8(e, rho, k, e.ctypes.data, rho.ctypes.data)
    for j in range((k // 8) * 8, k):
        s = _fma(e[j], rho[j], s)
    return s


@njit(**_JIT)
def _finish_row(e, rho, colf):
    """For a scaled row e: colf += 2^64 * e / (e . rho); returns the unscaled e . rho."""
    s = _dot(e, rho)
    w = _SCALE / s
    for j in range(e.shape[0]):
        colf[j] = _fma(w, e[j], colf[j])
    return s * _UNSCALE_F32


@njit(**_JIT)
def _flush(colf, col):
    """col += colf / 2^64 (in float64: exact)."""
    for j in range(colf.shape[0]):
        col[j] += colf[j] * _UNSCALE
        colf[j] = 0.0


@njit(**_JIT)
def cached_blocks(kern, rho, s_out, parts, b0, b1):
    """Blocks [b0, b1) of a cached (scaled) kernel: s_out = kern . rho, parts[b] = the
    column sums of kern / s (both unscaled)."""
    n, k = kern.shape
    colf = np.zeros(k, np.float32)
    for b in range(b0, b1):
        col = parts[b]
        col[:] = 0.0
        for i in range(b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, n)):
            s_out[i] = _finish_row(kern[i], rho, colf)
            if (i + 1) % FLUSH_ROWS == 0:
                _flush(colf, col)
        _flush(colf, col)


@njit(**_JIT)
def build_blocks(xh, xf, half, ld, lmax, lam, gc, rho, kern_out, store, rmax_out, s_out, parts, b0, b1):
    """As ``cached_blocks`` on kernel rows exp(max(lam*(x - lmax) + gc - rowmax, FLOOR))
    rebuilt from log-probs x: row i is ``[i*ld, i*ld + k)`` of the flat half bits ``xh``
    if ``half``, else of the flat float32 ``xf``; stored (scaled by 2^64) to ``kern_out``
    when ``store``."""
    n = lmax.shape[0]
    k = gc.shape[0]
    colf = np.zeros(k, np.float32)
    buf = np.empty(k, np.float32)
    scale = np.empty(k, np.uint32)
    for b in range(b0, b1):
        col = parts[b]
        col[:] = 0.0
        for i in range(b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, n)):
            e = kern_out[i] if store else buf
            if half:
                _half_row(xh[i * ld: i * ld + k], e, lmax[i], lam, gc)
            else:
                _float_row(xf[i * ld: i * ld + k], e, lmax[i], lam, gc)
            m = _row_max(e)
            _exp_shifted(e, m, scale)
            rmax_out[i] = m
            s_out[i] = _finish_row(e, rho, colf)
            if (i + 1) % FLUSH_ROWS == 0:
                _flush(colf, col)
        _flush(colf, col)


@njit(**_JIT)
def _load_row(xh, xf, half, ld, i, row, zeros):
    """Row i of the log-probs, as exact float32 values."""
    k = row.shape[0]
    if half:
        _half_row(xh[i * ld: i * ld + k], row, _F(0.0), _ONE, zeros)
    else:
        row[:] = xf[i * ld: i * ld + k]


@njit(**_JIT)
def max_blocks(xh, xf, half, ld, k, lmax_out, arg_out, b0, b1):
    """Each row's maximum log-prob and its index (the first on ties, as torch.argmax)."""
    n = lmax_out.shape[0]
    row, zeros = np.empty(k, np.float32), np.zeros(k, np.float32)
    for i in range(b0 * BLOCK_ROWS, min(b1 * BLOCK_ROWS, n)):
        _load_row(xh, xf, half, ld, i, row, zeros)
        best, arg = row[0], 0
        for j in range(1, k):
            if row[j] > best:
                best, arg = row[j], j
        lmax_out[i], arg_out[i] = best, arg


@njit(**_JIT)
def label_blocks(xh, xf, half, ld, lam, log_r, labels_out, b0, b1):
    """labels = argmax_j (lam * x[i, j] + log_r[j]) in float64, one rounding (fma), the
    first index on ties: where near-ties resolve matters for agreeing with POT."""
    n, k = labels_out.shape[0], log_r.shape[0]
    row, zeros = np.empty(k, np.float32), np.zeros(k, np.float32)
    for i in range(b0 * BLOCK_ROWS, min(b1 * BLOCK_ROWS, n)):
        _load_row(xh, xf, half, ld, i, row, zeros)
        best, arg = -np.inf, 0
        for j in range(k):
            z = _fma(np.float64(row[j]), lam, log_r[j])
            if z > best:
                best, arg = z, j
        labels_out[i] = arg


@njit(**_JIT)
def sum_blocks(parts, out):
    """out = sum of the block column sums, in block order."""
    out[:] = 0.0
    for b in range(parts.shape[0]):
        for j in range(parts.shape[1]):
            out[j] += parts[b, j]
