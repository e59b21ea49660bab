r"""The linear operator interface, composition, and the two generic solvers behind it.

A :class:`LinearOperator` :math:`A` maps signals of trailing shape ``in_shape`` to measurements
of trailing shape ``out_shape``; any leading dimensions are batch dimensions:
``(..., *in_shape) -> (..., *out_shape)``. It gives :math:`A s`, :math:`A^H x`, the Gram product
:math:`A^H A s`, :math:`\|A\|_2^2` and the regularised inverse :math:`(A^H A + \rho I)^{-1}`.
Where a subclass has no closed form, :math:`\|A\|^2` comes from Lanczos and the inverse
from conjugate gradient, both here.

Dtypes: an operator computes in the precision of its input (a float64 signal through a float32
operator gives float64), and in complex arithmetic when the input or the operator is complex.
Half-precision inputs are computed in float32, and never under autocast (:func:`exact`): mixed-precision
training (``trainer.precision=bf16-mixed``) is for the networks; the forward model keeps full precision.
Tensors are created on the input's device.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor, nn


def like(t: Tensor, x: Tensor) -> Tensor:
    """``t`` on ``x``'s device in ``x``'s precision, complex when ``t`` or ``x`` is."""
    real = x.dtype.to_real() if x.is_complex() else x.dtype
    return t.to(device=x.device, dtype=real.to_complex() if t.is_complex() or x.is_complex() else real)


def float64(t: Tensor) -> Tensor:
    """``t`` in double precision, complex128 if it is complex."""
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


HALF = (torch.bfloat16, torch.float16)


def no_autocast(t: Tensor) -> torch.autocast:
    """A context in which autocast is off on ``t``'s device."""
    return torch.autocast(t.device.type, enabled=False)


def autocasting(t: Tensor) -> bool:
    """Whether autocast is on for ``t``'s device."""
    try:
        return torch.is_autocast_enabled(t.device.type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled() if t.device.type == "cpu" else torch.is_autocast_enabled()


def exact(method: Callable[..., Tensor]) -> Callable[..., Tensor]:
    r"""``method(self, *tensors)`` outside autocast, with half-precision tensor arguments in float32.

    Every :class:`LinearOperator` subclass's ``forward``, ``adjoint``, ``gram`` and ``solve`` are wrapped in it:
    under ``bf16-mixed`` a measurement :math:`\Phi s` in bfloat16 would carry a relative error of 2⁻⁸, larger than
    the residual :math:`\Phi s - x` of a good reconstruction. Outside autocast, on full-precision input, it costs a
    check (~2 µs), not the context switch (~7 µs on a 150×200 ``Matrix``, a fifth of its product at batch 50)."""

    @functools.wraps(method)
    def wrapped(self: nn.Module, *args: object, **kwargs: object) -> Tensor:
        tensor = args[-1] if args else None  # the signal or measurement: the last positional argument of all four
        if not isinstance(tensor, Tensor) or (tensor.dtype not in HALF and not autocasting(tensor)):
            return method(self, *args, **kwargs)
        with no_autocast(tensor):
            return method(self, *(a.float() if isinstance(a, Tensor) and a.dtype in HALF else a for a in args), **kwargs)

    return wrapped


def real_inner(a: Tensor, b: Tensor, dims: int) -> Tensor:
    r""":math:`\mathrm{Re}\langle a, b\rangle = \mathrm{Re}\sum \bar a\, b` over the last ``dims`` dimensions (kept, size 1)."""
    return (a.conj() * b).real.sum(dim=tuple(range(-dims, 0)), keepdim=True)


def largest_eigenvalue(gram: Callable[[Tensor], Tensor], shape: Sequence[int], device: torch.device, max_iter: int = 1000, tol: float = 1e-13, seed: int = 0) -> float:
    r"""The largest eigenvalue of the Hermitian positive semi-definite map ``gram`` (:math:`\|A\|_2^2` for :math:`A^H A`).

    Lanczos, the Krylov acceleration of power iteration: from a standard normal vector of ``shape``
    drawn with ``seed`` in float64, the largest Ritz value of the tridiagonal :math:`T_j` after
    :math:`j` steps. It is a lower bound that converges far faster than the power iteration's
    Rayleigh quotient when the top eigenvalues cluster (a 256×256 zero-boundary blur: 164 steps to
    1e-13 where 1000 block power steps reach 4e-8). No reorthogonalisation: lost orthogonality
    repeats converged Ritz values but never moves the largest one above the spectrum. Stops when it
    changes by less than ``tol`` (relative), at an invariant subspace, or after ``max_iter`` steps.
    """
    q = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
    q = q / torch.linalg.vector_norm(q)
    previous_q, beta = torch.zeros_like(q), 0.0
    alphas: list[float] = []
    betas: list[float] = []
    estimate = 0.0
    for j in range(min(max_iter, math.prod(shape))):
        w = gram(q)
        alphas.append(real_inner(q.flatten(), w.flatten(), 1).item())
        w = w - alphas[-1] * q - beta * previous_q
        previous, estimate = estimate, float(eigh_tridiagonal(alphas, betas, eigvals_only=True, select="i", select_range=(j, j))[0])
        beta = torch.linalg.vector_norm(w).item()
        if beta <= 1e-12 * abs(estimate) or abs(estimate - previous) <= tol * abs(estimate):
            break
        betas.append(beta)
        previous_q, q = q, w / beta
    return max(estimate, 0.0)


def conjugate_gradient(apply: Callable[[Tensor], Tensor], rhs: Tensor, dims: int, tol: float | None = None, max_iter: int = 1000) -> Tensor:
    r"""Solve :math:`M u = b` for a Hermitian positive definite ``apply`` :math:`= M`, one system per batch entry.

    Args:
        apply: :math:`v \mapsto M v` on ``(..., *shape)``.
        rhs: :math:`b`, ``(..., *shape)``; the last ``dims`` dimensions are one system.
        tol: stop when every residual is below ``tol`` times its ``‖b‖`` (default 1e-12 in float64, 1e-6 otherwise).
        max_iter: at most this many steps.
    """
    if tol is None:
        tol = 1e-12 if rhs.dtype in (torch.float64, torch.complex128) else 1e-6
    u = torch.zeros_like(rhs)
    r, p = rhs.clone(), rhs.clone()
    rr = real_inner(r, r, dims)
    threshold = tol**2 * rr
    for _ in range(max_iter):
        active = rr > threshold
        if not active.any():
            break
        Mp = apply(p)
        alpha = torch.where(active, rr / torch.where(active, real_inner(p, Mp, dims), 1.0), 0.0)
        u = u + alpha * p
        r = r - alpha * Mp
        rr_next = real_inner(r, r, dims)
        p = r + torch.where(active, rr_next / torch.where(active, rr, 1.0), 0.0) * p
        rr = rr_next
    return u


class _RegularisedSolve(torch.autograd.Function):
    r""":math:`u = (A^H A + \rho I)^{-1} b` by conjugate gradient, differentiated implicitly:
    :math:`\bar b = (A^H A + \rho I)^{-1}\bar u` and :math:`\bar\rho = -\mathrm{Re}\langle \bar b, u\rangle`."""

    @staticmethod
    def forward(ctx, operator: LinearOperator, rho: Tensor, rhs: Tensor) -> Tensor:  # type: ignore[override]
        ctx.operator = operator
        solution = conjugate_gradient(lambda v: operator.gram(v) + rho * v, rhs, len(operator.in_shape))
        ctx.save_for_backward(rho, solution)
        return solution

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor | None, Tensor]:  # type: ignore[override]
        rho, solution = ctx.saved_tensors
        operator = ctx.operator
        grad_rhs = conjugate_gradient(lambda v: operator.gram(v) + rho * v, grad, len(operator.in_shape))
        grad_rho = -(grad_rhs.conj() * solution).real.sum().to(rho.dtype) if ctx.needs_input_grad[1] else None
        return None, grad_rho, grad_rhs


class LinearOperator(nn.Module, ABC):
    r"""A linear map :math:`A`: ``(..., *in_shape) -> (..., *out_shape)``, leading dimensions are batch.

    Subclasses implement :meth:`forward` and :meth:`adjoint`, and override :meth:`gram`,
    :meth:`solve` and the norm where they have something cheaper than the generic route. Their
    tensors are buffers, so an operator moves with ``.to(device)``; ``A @ B`` composes.

    Args:
        in_shape: trailing shape of the signals :math:`s`.
        out_shape: trailing shape of the measurements :math:`x = A s`.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("forward", "adjoint", "gram", "solve"):
            if name in cls.__dict__:
                setattr(cls, name, exact(cls.__dict__[name]))

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self._norm2: float | None = None

    @abstractmethod
    def forward(self, s: Tensor) -> Tensor:
        """:math:`A s`: ``(..., *in_shape) -> (..., *out_shape)``."""

    @abstractmethod
    def adjoint(self, x: Tensor) -> Tensor:
        r""":math:`A^H x`: ``(..., *out_shape) -> (..., *in_shape)``."""

    @exact
    def gram(self, s: Tensor) -> Tensor:
        r""":math:`A^H A s`, ``(..., *in_shape)``."""
        return self.adjoint(self.forward(s))

    def norm2(self) -> float:
        r""":math:`\|A\|_2^2`, the largest eigenvalue of :math:`A^H A` (computed once, then cached)."""
        if self._norm2 is None:
            self._norm2 = self.compute_norm2()
        return self._norm2

    def compute_norm2(self) -> float:
        """:meth:`norm2` without the cache: Lanczos on :meth:`gram` (:func:`largest_eigenvalue`; subclasses override with a closed form)."""
        return largest_eigenvalue(self.gram, self.in_shape, self.device)

    @exact
    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        r""":math:`(A^H A + \rho I)^{-1} b` for ``rhs`` :math:`b` ``(..., *in_shape)``, differentiable in ``rho`` and ``rhs``.

        Generic route: conjugate gradient with implicit differentiation (the operator's own tensors get no gradient)."""
        return _RegularisedSolve.apply(self, torch.as_tensor(rho, dtype=rhs.real.dtype, device=rhs.device), rhs)

    def measures(self, x: Tensor) -> bool:
        """Whether ``x`` is a batch of this operator's measurements (it ends in :attr:`out_shape`)."""
        dims = len(self.out_shape)
        return x.dim() >= dims and tuple(x.shape[x.dim() - dims :]) == self.out_shape

    def dense(self) -> Tensor:
        """The matrix of :math:`A`, ``(prod(out_shape), prod(in_shape))``, by applying it to the identity (small sizes)."""
        size = math.prod(self.in_shape)
        dtypes = [b.real.dtype for b in self.buffers() if b.is_floating_point() or b.is_complex()]
        dtype = functools.reduce(torch.promote_types, dtypes) if dtypes else torch.get_default_dtype()
        identity = torch.eye(size, dtype=dtype, device=self.device).reshape(size, *self.in_shape)
        return self.forward(identity).reshape(size, -1).T

    @property
    def device(self) -> torch.device:
        """The device of the operator's tensors (CPU when it has none)."""
        return next(self.buffers(), torch.empty(0)).device

    def __matmul__(self, other: LinearOperator) -> Composition:
        return Composition(self, other)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"


class Composition(LinearOperator):
    r"""The composition :math:`A B` (apply ``inner`` :math:`B`, then ``outer`` :math:`A`); also written ``A @ B``.

    :math:`(AB)^H = B^H A^H`; the Gram product uses :math:`A`'s, :math:`B^H (A^H A) B s`.

    Example:
        >>> import torch
        >>> from mbdl.operators import Decimation, Diagonal
        >>> A = Decimation((4,), factor=2) @ Diagonal(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        >>> A(torch.ones(4))
        tensor([1., 3.])
        >>> A.adjoint(torch.ones(2))
        tensor([1., 0., 3., 0.])
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        if inner.out_shape != outer.in_shape:
            raise ValueError(f"cannot compose: the inner operator gives {inner.out_shape}, the outer one takes {outer.in_shape}")
        super().__init__(inner.in_shape, outer.out_shape)
        self.outer, self.inner = outer, inner

    def forward(self, s: Tensor) -> Tensor:
        return self.outer(self.inner(s))

    def adjoint(self, x: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.adjoint(x))

    def gram(self, s: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.gram(self.inner(s)))


class PerShape(LinearOperator):
    r"""One forward model on signals of several trailing shapes: e.g. a blur or block compressive sensing on the
    training crops and on the whole test images. Each call applies the member whose ``in_shape`` (``forward``,
    ``gram``, ``solve``) or ``out_shape`` (``adjoint``) ends its input; :attr:`in_shape` and :attr:`out_shape` are the
    first member's. :math:`\|A\|^2` is the largest of the members' (a step safe for all of them).

    Args:
        members: the operators, with distinct ``in_shape`` and distinct ``out_shape`` and equally many trailing axes.

    Example:
        >>> import torch
        >>> from mbdl.operators import Convolution
        >>> A = PerShape([Convolution(torch.ones(3, 3) / 9, shape) for shape in [(8, 8), (20, 30)]])
        >>> A(torch.rand(4, 8, 8)).shape, A(torch.rand(2, 20, 30)).shape
        (torch.Size([4, 8, 8]), torch.Size([2, 20, 30]))
    """

    def __init__(self, members: Sequence[LinearOperator]) -> None:
        members = list(members)
        if len({m.in_shape for m in members}) != len(members) or len({m.out_shape for m in members}) != len(members):
            raise ValueError(f"PerShape needs distinct shapes, got {[(m.in_shape, m.out_shape) for m in members]}")
        if len({(len(m.in_shape), len(m.out_shape)) for m in members}) != 1:
            raise ValueError("PerShape members must have equally many trailing axes")
        super().__init__(members[0].in_shape, members[0].out_shape)
        self.members = nn.ModuleList(members)

    def member_for(self, t: Tensor, side: str = "in") -> LinearOperator:
        """The member whose ``in_shape`` (``side="in"``) or ``out_shape`` (``"out"``) ends ``t``."""
        dims = len(self.in_shape if side == "in" else self.out_shape)
        shape = tuple(t.shape[t.dim() - dims :])
        for member in self.members:
            if (member.in_shape if side == "in" else member.out_shape) == shape:
                return member
        known = [m.in_shape if side == "in" else m.out_shape for m in self.members]
        raise ValueError(f"no member of this PerShape operator takes trailing shape {shape} ({side}put); it has {known}")

    def forward(self, s: Tensor) -> Tensor:
        return self.member_for(s)(s)

    def adjoint(self, x: Tensor) -> Tensor:
        return self.member_for(x, "out").adjoint(x)

    def gram(self, s: Tensor) -> Tensor:
        return self.member_for(s).gram(s)

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        return self.member_for(rhs).solve(rho, rhs)

    def compute_norm2(self) -> float:
        return max(member.norm2() for member in self.members)

    def measures(self, x: Tensor) -> bool:
        return any(member.measures(x) for member in self.members)

    def map(self, build: Callable[[LinearOperator], LinearOperator]) -> PerShape:
        """``PerShape([build(member) for member in members])``, e.g. each member composed with a wavelet synthesis."""
        return PerShape([build(member) for member in self.members])


def members(operator: LinearOperator) -> list[LinearOperator]:
    """The members of a :class:`PerShape` operator, or ``[operator]``."""
    return list(operator.members) if isinstance(operator, PerShape) else [operator]


def per_member(operator: LinearOperator, build: Callable[[LinearOperator], LinearOperator]) -> LinearOperator:
    """``build`` applied to each member of a :class:`PerShape` operator (or to ``operator`` itself)."""
    return operator.map(build) if isinstance(operator, PerShape) else build(operator)
