"""Batched FISTA on the restricted problems of :mod:`ame.estimation.active_set`.

Float32 iterations on cached float64 Grams, certified (and polished where needed) in float64,
with warm-started power iterations for the step and adaptive restarts.
"""

from __future__ import annotations

import torch

_POWER_ITERATIONS = 50
_POWER_TOL = 2e-2
_LIPSCHITZ_MARGIN = 1.05
_FLOAT32_RESOLUTION = 1e-5


def solve_batch(queries, lam, tol, max_iter: int) -> bool:
    """Warm-started FISTA with adaptive restart on the problems of a few queries at once.

    The iterations run on a float32 copy of the float64 Grams: they are bound by memory traffic,
    which this halves, and float32 gradients resolve the KKT conditions to about 1e-5 of the
    largest correlation, finer than the default tolerance. Every problem is then certified by its
    float64 KKT residual (the largest violation of the optimality conditions) and, where that
    exceeds the tolerance or is not finite, polished by float64 iterations. The step is 1/L with L
    a warm-started power-iteration estimate of the largest eigenvalue of each Gram, times a
    margin, recomputed only after columns entered and raised where FISTA finds it short. Returns
    True when every problem reached its tolerance.
    """
    width = max(problems.width for problems in queries)
    if width == 0:
        return True
    F = queries[0].H.shape[0]
    if len(queries) == 1:
        H = queries[0].H[:, :width, :width]
        b, x, v = queries[0].b[:, :width], queries[0].beta[:, :width], queries[0].vec[:, :width]
    else:
        H = queries[0].H.new_zeros(len(queries) * F, width, width)
        b, x, v = (H.new_zeros(len(queries) * F, width) for _ in range(3))
        for k, problems in enumerate(queries):
            u, rows = problems.width, slice(k * F, (k + 1) * F)
            H[rows, :u, :u] = problems.H[:, :u, :u]
            b[rows, :u], x[rows, :u] = problems.b[:, :u], problems.beta[:, :u]
            v[rows, :u] = problems.vec[:, :u]
    H32 = H.float()
    lam = torch.as_tensor(lam, dtype=torch.float64, device=H.device).repeat_interleave(F)[:, None]
    tol = torch.as_tensor(tol, dtype=torch.float64, device=H.device).repeat_interleave(F)
    if any(problems.lipschitz is None for problems in queries):
        v = _power_iteration(H32, v.float()).double()
        top = (v * _matvec(H, v)).sum(1, keepdim=True).clamp_min(1e-12)
        for k, problems in enumerate(queries):
            u, rows = problems.width, slice(k * F, (k + 1) * F)
            problems.vec[:, :u] = v[rows, :u]
    else:
        top = torch.cat([problems.lipschitz for problems in queries])
    step = 1.0 / (_LIPSCHITZ_MARGIN * top)
    # float32 iterations on the problems off their optimum (after a KKT check adds columns, few
    # are), then a float64 certificate for all and float64 polishing where it fails
    goal = torch.maximum(tol, _FLOAT32_RESOLUTION * b.abs().amax(1))
    b32, x32, lam32 = b.float(), x.float(), lam.float()
    need = torch.nonzero(kkt_residual(H32, b32, x32, lam32) > goal).flatten()
    x = x.clone()
    if need.numel():
        args = (
            H32[need],
            b32[need],
            x32[need],
            lam32[need],
            step[need].float(),
            goal[need].float(),
        )
        x32, step32, _ = _fista(*args, max_iter)
        x[need], step[need] = x32.double(), step32.double()
    need = torch.nonzero(~(kkt_residual(H, b, x, lam) <= tol)).flatten()
    if need.numel():
        x[need], step[need], converged = _fista(
            H[need], b[need], x[need], lam[need], step[need], tol[need], max_iter
        )
    top = 1.0 / (_LIPSCHITZ_MARGIN * step)
    for k, problems in enumerate(queries):
        u, rows = problems.width, slice(k * F, (k + 1) * F)
        problems.beta[:, :u], problems.lipschitz = x[rows, :u], top[rows]
    return need.numel() == 0 or converged


def _fista(H, b, x, lam, step, tol, max_iter: int):
    """FISTA with gradient-based adaptive restart from ``x``, in the dtype of the arguments.

    Iterates until the gradient mapping of every problem is below its tolerance and its KKT
    residual (in this dtype) confirms it, or ``max_iter`` iterations. Returns the iterate, the
    steps and whether it converged.

    The power iteration behind ``step`` only bounds the largest eigenvalue from below, and can
    stop far below it (from a start nearly orthogonal to the top eigenvector); a step longer than
    the inverse curvature diverges or oscillates along that direction. So at iterations 1, 2, 4,
    8, ... the curvature of the last move is measured, and a problem whose step exceeds its
    inverse restarts from ``x`` with that curvature, times the margin, as its L.
    """
    start, y, t = x, x.clone(), torch.ones_like(step)
    converged = bool((kkt_residual(H, b, x, lam) <= tol).all())
    it = 0
    while not converged and it < max_iter:
        it += 1
        z = y - step * (_matvec(H, y) - b)
        x_new = z.sign() * (z.abs() - step * lam).clamp_min(0.0)
        if it & (it - 1) == 0:
            move = x_new - y
            sq = (move * move).sum(1, keepdim=True)
            curvature = (move * _matvec(H, move)).sum(1, keepdim=True)
            short = curvature * step > sq
            if bool(short.any()):
                step = torch.where(short, sq / (_LIPSCHITZ_MARGIN * curvature), step)
                x_new, x, y = (torch.where(short, start, v) for v in (x_new, x, y))
                t = torch.where(short, 1.0, t)
        if bool((((y - x_new) / step).abs().amax(1) <= tol).all()):
            converged = bool((kkt_residual(H, b, x_new, lam) <= tol).all())
        restart = ((y - x_new) * (x_new - x)).sum(1, keepdim=True) > 0
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        momentum = torch.where(restart, 0.0, (t - 1.0) / t_new)
        y = x_new + momentum * (x_new - x)
        x, t = x_new, torch.where(restart, 1.0, t_new)
    return x, step, converged


def _power_iteration(H, v):
    """Unit vectors near the top eigenvector of each matrix in H, warm-started from ``v``.

    Stops when every Rayleigh quotient changes by less than ``_POWER_TOL`` (relative); the
    quotients increase towards the largest eigenvalue, and the margin on the step covers the rest.
    """
    tiny = torch.finfo(v.dtype).tiny
    v = v / v.norm(dim=1, keepdim=True).clamp_min(tiny)
    rayleigh = torch.zeros(H.shape[0], dtype=H.dtype, device=H.device)
    for _ in range(_POWER_ITERATIONS):
        hv = _matvec(H, v)
        new = (v * hv).sum(1)
        v = hv / hv.norm(dim=1, keepdim=True).clamp_min(tiny)
        converged = bool(((new - rayleigh).abs() <= _POWER_TOL * new.abs()).all())
        rayleigh = new
        if converged:
            break
    return v


def _matvec(H, x):
    """``H_k x_k`` for a batch of symmetric matrices, shape (n_problems, width).

    Written as the row vector x_k^T H_k, which torch runs several times faster than the
    matrix times a one-column matrix on CPU.
    """
    return (x[:, None, :] @ H)[:, 0, :]


def kkt_residual(H, b, x, lam):
    """Largest violation of the LASSO optimality conditions of each problem, shape (n_problems,)."""
    grad = _matvec(H, x) - b
    violation = torch.where(
        x != 0, (grad + lam * x.sign()).abs(), (grad.abs() - lam).clamp_min(0.0)
    )
    return violation.amax(1)
