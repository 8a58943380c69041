"""Streaming per-layer moments for linear and debiased linear CKA, in feature space.

For a layer of A (centred samples e_n, n = 1..N) and a layer of B (centred f_n), with
linear kernels K = X X^T and L = Y Y^T, everything CKA needs is a sum over samples:

- C_xy = sum_n e_n f_n^T (the cross block), C_xx, C_yy (the layer's own blocks);
- for the unbiased HSIC of Song et al. (2012), also the squared norms a_n = |e_n|^2,
  b_n = |f_n|^2 through sum_n a_n b_n (docs/plugins/cka.md derives why that is enough).

Each batch is centred on its own mean; batches and shards are combined by shifting both
sides' sums to the combined mean (the generalisation of Chan's update to the third and
fourth order sums that sum_n a_n b_n needs), so no raw power sums are ever formed.
Memory: n_a * n_b + sum of squared layer widths, float64. No n x n Gram matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .chunk_norms import chunk_norms


class _Side:
    """One model's per-layer state: mean, own-layer blocks, and (used if higher) the sums
    t[k] = sum_n a_n e_nk over the neuron's own layer and q[l] = sum_n a_n^2."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(sizes)
        self.starts = np.cumsum([0, *self.sizes[:-1]])
        self.layer_of = np.repeat(np.arange(len(self.sizes)), self.sizes)
        width = sum(self.sizes)
        self.mean = np.zeros(width)
        self.blocks = [np.zeros((s, s)) for s in self.sizes]
        self.t = np.zeros(width)
        self.q = np.zeros(len(self.sizes))

    def slices(self) -> list[slice]:
        return [slice(int(s), int(s) + size) for s, size in zip(self.starts, self.sizes, strict=True)]

    def per_layer(self, values: np.ndarray, axis: int = 0) -> np.ndarray:
        """Sum ``values`` over the neurons of each layer along ``axis``."""
        return np.add.reduceat(values, self.starts, axis=axis)

    def traces(self) -> np.ndarray:
        """sum_n a_n for every layer: the trace of its own block."""
        return np.array([np.trace(b) for b in self.blocks])

    def frobenius2(self) -> np.ndarray:
        """|C_ll|_F^2 for every layer."""
        return np.array([np.einsum("ij,ij->", b, b) for b in self.blocks])


class LayerMoments:
    """Centred sums over samples for every (layer of A, layer of B) pair.

    ``higher=False`` keeps only the second-order blocks (linear CKA); ``higher=True`` adds
    the sums of squared norms that debiased CKA needs. ``dtype`` is the GEMM precision of the
    second-order blocks (float32 is twice as fast; float64 is exact to rounding); the sums
    themselves are always float64.
    """

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *, higher: bool,
                 dtype: type = np.float32) -> None:
        self.higher = higher
        self.dtype = dtype
        self.n = 0
        self.a = _Side(sizes_a)
        self.b = _Side(sizes_b)
        self.cxy = np.zeros((sum(sizes_a), sum(sizes_b)))
        # Used if higher (small): txb[k, m] = sum_n b^m_n e_nk; tya[j, l] = sum_n a^l_n f_nj;
        # qab[l, m] = sum_n a^l_n b^m_n.
        self.txb = np.zeros((sum(sizes_a), len(sizes_b)))
        self.tya = np.zeros((sum(sizes_b), len(sizes_a)))
        self.qab = np.zeros((len(sizes_a), len(sizes_b)))

    # -- accumulation --------------------------------------------------------------------
    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add a batch ``x`` (batch, n_a), ``y`` (batch, n_b)."""
        if x.shape[0]:
            self.merge(self._of_batch(x, y))

    def _of_batch(self, x: np.ndarray, y: np.ndarray) -> LayerMoments:
        m = LayerMoments(self.a.sizes, self.b.sizes, higher=self.higher, dtype=self.dtype)
        m.n = x.shape[0]
        m.a.mean, ex = _centre(x)
        m.b.mean, fy = _centre(y)
        gx: np.ndarray = ex.astype(self.dtype, copy=False)
        gy: np.ndarray = fy.astype(self.dtype, copy=False)
        m.cxy = _gemm(gx, gy)
        m.a.blocks = [_gemm(gx[:, s], gx[:, s]) for s in m.a.slices()]
        m.b.blocks = [_gemm(gy[:, s], gy[:, s]) for s in m.b.slices()]
        if self.higher:
            na, nb = m.a.per_layer(ex * ex, axis=1), m.b.per_layer(fy * fy, axis=1)  # (batch, L)
            m.a.t = np.einsum("nk,nk->k", ex, na[:, m.a.layer_of])
            m.b.t = np.einsum("nk,nk->k", fy, nb[:, m.b.layer_of])
            m.a.q, m.b.q = (na * na).sum(axis=0), (nb * nb).sum(axis=0)
            m.txb, m.tya, m.qab = ex.T @ nb, fy.T @ na, na.T @ nb
        return m

    def merge(self, other: LayerMoments) -> None:
        """Fold in the sums of other samples: shift both to the combined mean, then add."""
        if other.n == 0:
            return
        other = other.copy()
        if self.n:
            n = self.n + other.n
            mean_x = self.a.mean + (other.a.mean - self.a.mean) * (other.n / n)
            mean_y = self.b.mean + (other.b.mean - self.b.mean) * (other.n / n)
            self.shift(mean_x, mean_y)
            other.shift(mean_x, mean_y)
        self.n += other.n
        self.a.mean, self.b.mean = other.a.mean, other.b.mean
        self.cxy += other.cxy
        for mine, theirs in ((self.a, other.a), (self.b, other.b)):
            for block, add in zip(mine.blocks, theirs.blocks, strict=True):
                block += add
            mine.t += theirs.t
            mine.q += theirs.q
        self.txb += other.txb
        self.tya += other.tya
        self.qab += other.qab

    def shift(self, mean_x: np.ndarray, mean_y: np.ndarray) -> None:
        """Re-express every sum about new centres ``mean_x``, ``mean_y`` (exact algebra).

        With e' = e + d (d = old mean - new mean), a' = a + 2 d.e + |d|^2; expanding each
        product and using sum_n e_n = 0 gives the updates below (derived in docs/plugins/cka.md).
        Every right-hand side uses the old sums, so the higher orders go first.
        """
        d, e, n = self.a.mean - mean_x, self.b.mean - mean_y, self.n
        if self.higher:
            self._shift_higher(d, e)
        self.cxy += n * np.outer(d, e)
        for side, delta in ((self.a, d), (self.b, e)):
            for block, s in zip(side.blocks, side.slices(), strict=True):
                block += n * np.outer(delta[s], delta[s])
            side.mean = np.array(side.mean - delta)

    def _shift_higher(self, d: np.ndarray, e: np.ndarray) -> None:
        a, b, n = self.a, self.b, self.n
        da2, db2 = a.per_layer(d * d), b.per_layer(e * e)  # |d_l|^2 per layer
        sa, sb = a.traces(), b.traces()  # sum_n a_n per layer
        ce = b.per_layer(self.cxy * e, axis=1)  # (n_a, L_b): sum_n (e_m . f^m_n) e_nk
        cd = a.per_layer(self.cxy * d[:, None], axis=0).T  # (n_b, L_a): sum_n (d_l . e^l_n) f_nj
        self.qab += (2 * b.per_layer(self.tya * e[:, None]).T + np.outer(sa, db2)
                     + 2 * a.per_layer(self.txb * d[:, None]) + 4 * a.per_layer(ce * d[:, None])
                     + np.outer(da2, sb) + n * np.outer(da2, db2))
        for side, delta, d2, s in ((a, d, da2, sa), (b, e, db2, sb)):
            cd_own = np.concatenate([blk @ delta[sl] for blk, sl in zip(side.blocks, side.slices(),
                                                                         strict=True)])
            side.q += (4 * side.per_layer(delta * side.t) + 2 * d2 * s
                       + 4 * side.per_layer(delta * cd_own) + n * d2 * d2)
            side.t += delta * s[side.layer_of] + 2 * cd_own + n * d2[side.layer_of] * delta
        self.txb += np.outer(d, sb) + 2 * ce + n * np.outer(d, db2)
        self.tya += np.outer(e, sa) + 2 * cd + n * np.outer(e, da2)

    def copy(self) -> LayerMoments:
        out = LayerMoments(self.a.sizes, self.b.sizes, higher=self.higher, dtype=self.dtype)
        out.n = self.n
        out.cxy = self.cxy.copy()
        for mine, theirs in ((out.a, self.a), (out.b, self.b)):
            mine.mean = theirs.mean.copy()
            mine.blocks = [blk.copy() for blk in theirs.blocks]
            mine.t, mine.q = theirs.t.copy(), theirs.q.copy()
        out.txb, out.tya, out.qab = self.txb.copy(), self.tya.copy(), self.qab.copy()
        return out

    # -- results -------------------------------------------------------------------------
    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        """Neurons whose centred sum of squares is exactly zero, (n_a,), (n_b,)."""
        dead_a, dead_b = (np.concatenate([np.diagonal(b) for b in side.blocks]) == 0
                          for side in (self.a, self.b))
        return dead_a, dead_b

    def cross_frobenius2(self) -> np.ndarray:
        """|C_lm|_F^2 for every layer pair, (L_a, L_b)."""
        return self.b.per_layer(self.a.per_layer(self.cxy * self.cxy, axis=0), axis=1)

    def linear_cka(self) -> np.ndarray:
        """|C_xy|_F^2 / (|C_xx|_F |C_yy|_F) per layer pair; NaN for a constant layer."""
        return _ratio(self.cross_frobenius2(), self.a.frobenius2(), self.b.frobenius2())

    def debiased_cka(self) -> np.ndarray:
        """Unbiased HSIC (Song et al. 2012) ratio per layer pair; NaN where undefined."""
        n = self.n
        sa, sb = self.a.traces(), self.b.traces()
        c1, c2 = 1.0 / ((n - 1) * (n - 2)), n / (n - 2)
        hxy = self.cross_frobenius2() + c1 * np.outer(sa, sb) - c2 * self.qab
        hxx = self.a.frobenius2() + c1 * sa * sa - c2 * self.a.q
        hyy = self.b.frobenius2() + c1 * sb * sb - c2 * self.b.q
        return _ratio(hxy, hxx, hyy)


class StreamedMoments:
    """The second-order sums of linear CKA from the core's chunked co-moments
    (:class:`neurocorr_core.stats.CoMoments`: one float32 GEMM per chunk of samples into
    float64 sums, the cross block and only the diagonal blocks of each model's layers). The
    fast path of ``cka`` with ``precision="float32"``: its cost is the GEMM floor. While all
    samples are one chunk, the norms come from the chunk itself (:mod:`.chunk_norms`)."""

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int]) -> None:
        from neurocorr_core.stats import CoMoments

        self.a, self.b = _Side(sizes_a), _Side(sizes_b)
        self.co = CoMoments(sum(sizes_a), sum(sizes_b), within=(tuple(sizes_a), tuple(sizes_b)))

    @property
    def n(self) -> int:
        chunk = self._chunk()  # counted without running the chunk's product (co.n would)
        return self.co.n if chunk is None else chunk[0][0].shape[0]

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        self.co.update(x, y)

    def merge(self, other: StreamedMoments) -> None:
        self.co.merge(other.co)

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        """Neurons that took one value over every sample (exact), (n_a,), (n_b,)."""
        chunk = self._chunk()
        if chunk is not None:  # read from the chunk's sums: no product run for it
            return chunk[0][2] == 0, chunk[1][2] == 0
        return self.co.constant_x, self.co.constant_y

    def linear_cka(self) -> np.ndarray:
        """|C_lm|_F^2 / (|C_ll|_F |C_mm|_F) per layer pair; NaN for a layer whose neurons are
        all constant. Block by block: no (n_a, n_b) temporary."""
        chunk = self._chunk()
        norms = None if chunk is None else chunk_norms(chunk, self.a.slices(), self.b.slices())
        out = _ratio(*(norms or self._accumulated_norms()))
        dead_a, dead_b = self.constant()
        out[np.logical_and.reduceat(dead_a, self.a.starts), :] = np.nan
        out[:, np.logical_and.reduceat(dead_b, self.b.starts)] = np.nan
        return out

    def _chunk(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] | None:
        """All samples as the core's one gathered chunk, where its accumulators are numpy's."""
        return self.co.single_chunk() if self.co.backend.name == "numpy" else None

    def _accumulated_norms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cxy = self.co.xy
        cross = np.array([[np.einsum("ij,ij->", cxy[r, c], cxy[r, c]) for c in self.b.slices()]
                          for r in self.a.slices()])
        own_a = np.array([np.einsum("ij,ij->", blk, blk) for blk in self.co.blocks_x])
        own_b = np.array([np.einsum("ij,ij->", blk, blk) for blk in self.co.blocks_y])
        return cross, own_a, own_b


def _ratio(cross: np.ndarray, self_a: np.ndarray, self_b: np.ndarray) -> np.ndarray:
    """cross / sqrt(self_a self_b^T); NaN where the product is not positive."""
    denominator = np.outer(self_a, self_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = cross / np.sqrt(np.where(denominator > 0, denominator, np.nan))
    return np.asarray(out, dtype=np.float64)


def _centre(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = a.mean(axis=0, dtype=np.float64)
    return mean, np.asarray(a, dtype=np.float64) - mean


def _gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(a.T @ b, dtype=np.float64)
