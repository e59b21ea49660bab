r"""The spectrum on the imaging task (:mod:`mbdl.tasks.imaging`), every method on the assumed operator :math:`A`.

* model-based (:class:`Reconstruction`): TV-regularised reconstruction by primal-dual iterations, or wavelet-:math:`\ell_1`
  by ISTA/FISTA on :math:`A S` (orthonormal Haar synthesis :math:`S`), hand-set :math:`\lambda`;
* learned optimizer: the same iterations with step and :math:`\lambda` shared over the iterations and trained;
* black box (:class:`ImageNet`): a DnCNN or a small U-Net on the linear start :math:`s^0`;
* unfolded (:class:`UnfoldedNet`): ISTA-Net⁺ (per-phase transform, threshold and step, the symmetry loss) and
  MoDL (exact data consistency :math:`(A^H A + \rho I)^{-1}` with one shared CNN);
* DNN-aided (:class:`DNNAided`): plug-and-play HQS with a Gaussian denoiser trained once
  (:func:`train_gaussian_denoiser`, ``scripts/train_denoiser.py``) and neural proximal gradient (a shared residual CNN
  as the proximal step).

The learned methods start from :class:`LinearStart`: for block compressive sensing ISTA-Net's
:math:`Q = S Y^\top (Y Y^\top)^{-1}`, fitted by least squares on the labelled training pairs the method is trained
on; otherwise :math:`A^H x`. Images are ``(batch, 1, h, w)``; one method reconstructs training crops and whole
test images alike (the operator is a :class:`~mbdl.operators.PerShape`).
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.fista import FISTA
from mbdl.algorithms.half_quadratic import HalfQuadraticSplitting
from mbdl.algorithms.ista import ISTA
from mbdl.algorithms.parameters import IterationModules, Mode
from mbdl.algorithms.proximal_gradient import NeuralProximalGradient
from mbdl.algorithms.total_variation import PrimalDualTV
from mbdl.config import check_choice, check_positive, require
from mbdl.methods.base import ClosedForm, IterativeMethod, Method, Objective
from mbdl.nets import dihedral
from mbdl.nets.image import DnCNN, ISTANetProx, UNet
from mbdl.operators import BlockCompressiveSensing, WaveletSynthesis, members, no_autocast, per_member
from mbdl.tasks.inverse_problem import LinearInverseProblem


class LinearStart(nn.Module):
    r"""The first estimate :math:`s^0` of the learned methods.

    Block compressive sensing: :math:`s^0 = Q y` on every block, :math:`Q` ``(B², m)`` the least-squares fit
    :math:`S Y^\top (Y Y^\top)^{-1}` of the training blocks on their measurements (ISTA-Net's ``Qinit``),
    accumulated from every labelled batch :meth:`observe` sees (float64 sums); :math:`\Phi^+` until ``2m`` blocks
    have been seen. Other operators: :math:`s^0 = A^H x`.

    :attr:`ready` once ``settle · m`` blocks have been seen (always, for other operators): before, :math:`s^0` is
    :math:`\Phi^+ y` (7 dB at CS 25 %) or a fit from too few blocks, and a network trained on it learns a
    correction that the next fits make wrong; the learned methods train nothing until then (:class:`_LearnsStart`).
    """

    #: blocks, in multiples of m, the least-squares Q is fitted on before the learned part trains.
    settle = 4

    def __init__(self, operator: nn.Module) -> None:
        super().__init__()
        self.operator = operator
        first = members(operator)[0]
        self.blockwise = isinstance(first, BlockCompressiveSensing)
        if self.blockwise:
            phi = first.phi.H.double()
            self.register_buffer("Q", torch.linalg.pinv(phi).float())
            self.register_buffer("sy", torch.zeros(phi.shape[1], phi.shape[0], dtype=torch.float64))
            self.register_buffer("yy", torch.zeros(phi.shape[0], phi.shape[0], dtype=torch.float64))
            self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def observe(self, x: Tensor, s: Tensor) -> None:
        """Add the labelled pairs ``(x, s)`` to the least-squares fit of :math:`Q` (block compressive sensing only)."""
        if not self.blockwise:
            return
        member = self.operator.member_for(s) if hasattr(self.operator, "member_for") else self.operator
        S = member.blocks(s).reshape(-1, self.Q.shape[0]).double()
        Y = x.reshape(-1, self.Q.shape[1]).double()
        self.sy += S.T @ Y
        self.yy += Y.T @ Y
        self.count += len(S)
        m = self.Q.shape[1]
        if self.count >= 2 * m:
            ridge = 1e-9 * torch.trace(self.yy) / m
            self.Q.copy_(torch.linalg.solve(self.yy + ridge * torch.eye(m, dtype=torch.float64, device=self.yy.device), self.sy.T).T.float())

    @property
    def ready(self) -> bool:
        """Whether :math:`Q` has been fitted on ``settle · m`` blocks (always true but for block compressive sensing)."""
        return not self.blockwise or float(self.count) >= self.settle * self.Q.shape[1]

    def forward(self, f: LeastSquares) -> Tensor:
        """:math:`s^0` for the data term ``f`` (its measurements ``f.x``), in full precision (as the operators)."""
        if not self.blockwise:
            return f.adjoint_x
        member = self.operator.member_for(f.x, "out") if hasattr(self.operator, "member_for") else self.operator
        with no_autocast(f.x):
            return member.image(f.x @ self.Q.T.to(f.x.dtype))


class _LearnsStart:
    """The training loss of a method with a :class:`LinearStart` ``start``: labelled batches refine :math:`Q` first."""

    start: LinearStart

    def observe(self, x: Tensor, objective: Objective) -> Tensor | None:
        """Add a labelled training batch to the start's fit; while the start is not :attr:`~LinearStart.ready`, the
        loss to return instead of the method's: the start's objective, with a zero gradient on every parameter
        (the optimizer steps move nothing), so the learned part first trains on the settled start."""
        if objective.s is not None and self.training:  # type: ignore[attr-defined]
            self.start.observe(x, objective.s)
            if not self.start.ready:
                zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0  # type: ignore[attr-defined]
                return objective(self.start(LeastSquares(self.start.operator, x)).detach()) + zero
        return None


RECONSTRUCTIONS = ("tv", "wavelet_ista", "wavelet_fista")
STARTS = ("zero", "adjoint")


class Reconstruction(IterativeMethod):
    r"""Regularised reconstruction with the assumed operator (model-based; ``mode="shared"``: learned optimizer).

    Args:
        assumed: the task's assumed linear inverse problem.
        algorithm: ``tv`` (:math:`\min \frac12\|x - As\|^2 + \lambda\,\mathrm{TV}(s)`, primal-dual, iterates in
            :math:`[0, 1]` when ``box``), ``wavelet_ista`` or ``wavelet_fista`` (:math:`\min_c \frac12\|x - ASc\|^2 +
            \lambda\|c\|_1`, :math:`\hat s = S c`, Haar with ``levels`` levels).
        iterations: iterations.
        mode: ``fixed`` (model-based), ``shared`` (learned optimizer) or ``per_iteration``.
        lam: :math:`\lambda` (the initial value when trained).
        step: the step (``None``: :math:`1/\|A\|^2`).
        levels: wavelet levels.
        box: TV: project on :math:`[0, 1]`.
        start: TV: ``zero`` or ``adjoint`` (:math:`A^H x`).
    """

    def __init__(
        self,
        assumed: LinearInverseProblem,
        algorithm: str = "tv",
        iterations: int = 100,
        mode: Mode = "fixed",
        lam: float = 0.01,
        step: float | None = None,
        levels: int = 3,
        box: bool = True,
        start: str = "adjoint",
    ) -> None:
        super().__init__(assumed)
        check_choice(algorithm, "method.algorithm", RECONSTRUCTIONS)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        check_choice(start, "method.start", STARTS)
        if step is not None:
            check_positive(step, "method.step")
        operator = assumed.operator
        if algorithm == "tv":
            first = None if start == "zero" else (lambda f: f.adjoint_x)
            self.algorithm = PrimalDualTV(operator, iterations, lam, step, box=box, mode=mode, start=first)
            self.synthesis = None
        else:
            check_positive(levels, "method.levels", integer=True)
            self.synthesis = per_member(operator, lambda a: WaveletSynthesis(a.in_shape, levels))
            composed = per_member(operator, lambda a: a @ WaveletSynthesis(a.in_shape, levels))
            build = ISTA if algorithm == "wavelet_ista" else FISTA
            self.algorithm = build(composed, iterations, lam, step, mode=mode)

    def readout(self, iterate: Tensor) -> Tensor:
        return iterate if self.synthesis is None else self.synthesis(iterate)


NETS = ("dncnn", "unet")


class ImageNet(_LearnsStart, Method):
    """Black box: a DnCNN or a small U-Net from the linear start :math:`s^0` (:class:`LinearStart`) to the image.

    Args:
        assumed: the task's assumed linear inverse problem.
        net: ``dncnn`` or ``unet``.
        channels: hidden channels (U-Net: at the finest scale).
        layers: DnCNN convolutions.
    """

    def __init__(self, assumed: LinearInverseProblem, net: str = "dncnn", channels: int = 32, layers: int = 8) -> None:
        super().__init__(assumed)
        check_choice(net, "method.net", NETS)
        self.start = LinearStart(assumed.operator)
        self.net = DnCNN(channels, layers) if net == "dncnn" else UNet(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.start(LeastSquares(self.start.operator, x)))

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        if (waiting := self.observe(x, objective)) is not None:
            return waiting
        return objective(self(x))


class ModulePrior(nn.Module):
    """The prior step of :class:`~mbdl.algorithms.half_quadratic.HalfQuadraticSplitting` from networks, ``prior(v, t) = nets[t](v)``."""

    def __init__(self, nets: IterationModules) -> None:
        super().__init__()
        self.nets = nets

    def forward(self, v: Tensor, t: int) -> Tensor:
        return self.nets[t](v)


UNFOLDED = ("istanet_plus", "modl", "unrolled_pnp")


class UnfoldedNet(_LearnsStart, IterativeMethod):
    r"""Deep unfolding on images, from the linear start :math:`s^0`.

    ``istanet_plus`` (Zhang & Ghanem 2018), per phase :math:`t`: :math:`r = s - \rho_t A^H(As - x)`, then
    :math:`s = r + \mathcal G_t(\tilde{\mathcal F}_t^{-1}(\eta_{\theta_t}(\tilde{\mathcal F}_t(\mathcal D_t r))))`
    (:class:`~mbdl.nets.image.ISTANetProx`), trained with the symmetry loss
    :math:`\gamma \sum_t \mathrm{mean}\,|\tilde{\mathcal F}_t^{-1}\tilde{\mathcal F}_t \mathcal D_t r - \mathcal D_t r|^2`.
    ``modl`` (Aggarwal et al. 2019): :math:`s = (A^H A + \rho I)^{-1}(A^H x + \rho\,\mathcal D(s))` with one shared
    residual CNN :math:`\mathcal D` (a DnCNN) and a trained shared :math:`\rho`. ``unrolled_pnp``: the same iteration
    with plug-and-play's Gaussian denoiser as :math:`\mathcal D` (:class:`ScheduledDenoiser`, the file the ``pnp``
    method of :class:`DNNAided` reads), unrolled over ``iterations`` and trained end to end from plug-and-play's
    schedule: the noise levels :math:`\sigma_t` and :math:`\lambda` (:math:`\rho_t = \lambda/\sigma_t^2`), and with
    ``finetune`` the denoiser's weights (deep unfolded PnP, as in Zhang et al.'s USRNet 2020, here warm-started).

    Args:
        assumed: the task's assumed linear inverse problem.
        algorithm: ``istanet_plus``, ``modl`` or ``unrolled_pnp``.
        iterations: phases.
        channels: feature channels (ISTA-Net⁺: 32; MoDL: the CNN's).
        layers: MoDL's CNN convolutions.
        step: ISTA-Net⁺'s initial :math:`\rho` (0.5 as ISTA-Net, with :math:`\|\Phi\| = 1`; ``None``: :math:`1/\|A\|^2`).
        symmetry: ISTA-Net⁺'s :math:`\gamma` (0.01; 0: ISTA-Net⁺ without the symmetry loss, cheaper).
        rho: MoDL's initial :math:`\rho`.
        denoiser, lam, sigma_max, sigma_min: ``unrolled_pnp``: the denoiser file and the initial schedule (as
            :class:`DNNAided`'s ``pnp``).
        finetune: ``unrolled_pnp``: train the denoiser's weights too (``False``: only :math:`\sigma_t` and :math:`\lambda`).
        ensemble: ``unrolled_pnp``: the denoiser's geometric self-ensemble, in training too (:class:`ScheduledDenoiser`).
    """

    def __init__(
        self,
        assumed: LinearInverseProblem,
        algorithm: str = "istanet_plus",
        iterations: int = 9,
        channels: int = 32,
        layers: int = 5,
        step: float | None = 0.5,
        symmetry: float = 0.01,
        rho: float = 1.0,
        denoiser: str | None = None,
        lam: float = 3e-6,
        sigma_max: float = 50 / 255,
        sigma_min: float | None = None,
        finetune: bool = True,
        ensemble: str = "none",
    ) -> None:
        super().__init__(assumed)
        check_choice(algorithm, "method.algorithm", UNFOLDED)
        check_choice(ensemble, "method.ensemble", dihedral.ENSEMBLES)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(symmetry, "method.symmetry", strict=False)
        check_positive(rho, "method.rho")
        operator = assumed.operator
        self.start = LinearStart(operator)
        self.symmetry = symmetry if algorithm == "istanet_plus" else 0.0
        if algorithm == "istanet_plus":
            if step is not None:
                check_positive(step, "method.step")
            prox = partial(ISTANetProx, channels, symmetry > 0)
            self.algorithm = NeuralProximalGradient(operator, iterations, prox, tied=False, step=step, start=self.start)
        elif algorithm == "unrolled_pnp":
            prior = pnp_prior(assumed, denoiser, iterations, lam, sigma_max, sigma_min, ensemble, trained=True, finetune=finetune)
            self.algorithm = HalfQuadraticSplitting(operator, iterations, prior, prior.penalty, start=self.start)
        else:
            DnCNN(channels, layers)  # validates the options
            nets = IterationModules(partial(DnCNN, channels, layers), iterations, tied=True)
            self.algorithm = HalfQuadraticSplitting(operator, iterations, ModulePrior(nets), rho, mode="shared", start=self.start)

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        """The objective, plus ISTA-Net⁺'s symmetry loss over the phases that ran."""
        if (waiting := self.observe(x, objective)) is not None:
            return waiting
        loss = objective(self(x))
        if self.symmetry:
            phases = self.algorithm.iterations if self.depth is None else self.depth
            residuals = [self.algorithm.prox[t].symmetry for t in range(phases)]
            loss = loss + self.symmetry * sum(r.square().mean() for r in residuals)
        return loss


class NoiseLevelDenoiser(nn.Module):
    """A Gaussian denoiser told its noise level: a DnCNN on ``[v, σ·1]`` (the image and a constant noise-level map).

    Args:
        channels, layers: the DnCNN's.
    """

    def __init__(self, channels: int = 32, layers: int = 8) -> None:
        super().__init__()
        self.options = {"channels": channels, "layers": layers}
        self.net = DnCNN(channels, layers, in_channels=2)

    def forward(self, v: Tensor, sigma: Tensor | float) -> Tensor:
        """The denoised ``v`` ``(batch, 1, h, w)`` at noise std ``sigma`` (a number, or ``(batch,)``)."""
        level = torch.as_tensor(sigma, dtype=v.dtype, device=v.device).reshape(-1, 1, 1, 1).expand(v.shape[0], 1, *v.shape[-2:])
        return self.net(torch.cat([v, level], dim=1))


def train_gaussian_denoiser(
    images: list[Tensor],
    seconds: float,
    crop: int = 40,
    batch_size: int = 32,
    sigma_max: float = 50 / 255,
    channels: int = 32,
    layers: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 100,
) -> tuple[NoiseLevelDenoiser, list[tuple[int, float, float]]]:
    """Train a :class:`NoiseLevelDenoiser` on fresh random crops of ``images`` with noise std uniform in
    ``[0, sigma_max]`` for ``seconds`` of wall time (Adam, MSE, cosine decay over the time budget).

    Returns the denoiser and its curve ``(step, seconds, mean loss of the last steps)``."""
    from mbdl.tasks.images import random_crops

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    denoiser = NoiseLevelDenoiser(channels, layers)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=lr)
    curve, losses, step, start = [], [], 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(elapsed / seconds, 1.0)))
        s = random_crops(images, batch_size, (crop, crop), generator)
        sigma = sigma_max * torch.rand(batch_size, generator=generator)
        noisy = s + sigma.view(-1, 1, 1, 1) * torch.randn(s.shape, generator=generator)
        loss = (denoiser(noisy, sigma) - s).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % log_every == 0:
            curve.append((step, time.perf_counter() - start, sum(losses[-log_every:]) / log_every))
    return denoiser, curve


def save_denoiser(denoiser: NoiseLevelDenoiser, path: str | Path, info: dict[str, Any]) -> None:
    """Write the denoiser's options, weights and ``info`` (how it was trained) to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"options": denoiser.options, "state": denoiser.state_dict(), "info": info}, path)


def load_denoiser(path: str | Path) -> NoiseLevelDenoiser:
    """The :class:`NoiseLevelDenoiser` saved at ``path`` (:func:`save_denoiser`), frozen."""
    file = Path(path).expanduser()
    require(file.is_file(), "method.denoiser", f"{str(file)!r} is not a file; train one with scripts/train_denoiser.py --out {file}")
    saved = torch.load(file, map_location="cpu", weights_only=True)
    denoiser = NoiseLevelDenoiser(**saved["options"])
    denoiser.load_state_dict(saved["state"])
    return denoiser.requires_grad_(False).eval()


class ScheduledDenoiser(nn.Module):
    r"""The prior step of plug-and-play HQS: ``prior(v, t)`` denoises at the noise level :math:`\sigma_t`, and
    :meth:`penalty` is :math:`\rho_t = \lambda/\sigma_t^2` (DPIR's coupling).

    :math:`\sigma_t` falls geometrically from ``sigma_max`` to ``sigma_min`` over ``iterations``. ``trained``: every
    :math:`\log\sigma_t` and :math:`\log\lambda` are parameters (so they stay positive), the denoiser's weights too
    when ``denoiser`` is not frozen; otherwise buffers (plug-and-play: nothing trained).

    Args:
        denoiser: the Gaussian denoiser (:func:`load_denoiser`).
        iterations: ``T``.
        lam: :math:`\lambda`.
        sigma_max, sigma_min: :math:`\sigma_0` and :math:`\sigma_{T-1}` (on the [0, 1] image scale).
        trained: train the schedule.
        ensemble: the denoiser's geometric self-ensemble (:mod:`mbdl.nets.dihedral`): ``none``; ``periodic``
            (DPIR's: iteration :math:`t` denoises in the orientation :math:`g_{t \bmod 8}`, no extra cost); ``full``
            (the mean over the eight orientations at every iteration, eight times the cost).
    """

    def __init__(
        self, denoiser: NoiseLevelDenoiser, iterations: int, lam: float, sigma_max: float, sigma_min: float, trained: bool = False, ensemble: str = "none"
    ) -> None:
        super().__init__()
        self.ensemble = ensemble  # checked by the methods that build it (UnfoldedNet, DNNAided)
        check_positive(lam, "method.lam")
        check_positive(sigma_max, "method.sigma_max")
        check_positive(sigma_min, "method.sigma_min")
        self.denoiser = denoiser
        ratio = (sigma_min / sigma_max) ** (1 / max(iterations - 1, 1))
        log_sigmas = torch.log(torch.tensor([sigma_max * ratio**t for t in range(iterations)]))
        log_lam = torch.log(torch.tensor(float(lam)))
        for name, value in (("log_sigmas", log_sigmas), ("log_lam", log_lam)):
            if trained:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def sigma(self, t: int) -> Tensor:
        r""":math:`\sigma_t`."""
        return self.log_sigmas[t].exp()

    def penalty(self, t: int) -> Tensor:
        r""":math:`\rho_t = \lambda / \sigma_t^2`."""
        return (self.log_lam - 2 * self.log_sigmas[t]).exp()

    def forward(self, v: Tensor, t: int) -> Tensor:
        def denoise(u: Tensor) -> Tensor:
            return self.denoiser(u, self.sigma(t))

        if self.ensemble == "periodic":
            return dihedral.conjugated(denoise, v, t % dihedral.ORDER)
        if self.ensemble == "full":
            return dihedral.ensemble(denoise, v)
        return denoise(v)


def pnp_prior(
    assumed: LinearInverseProblem,
    denoiser: str | None,
    iterations: int,
    lam: float,
    sigma_max: float,
    sigma_min: float | None,
    ensemble: str = "none",
    trained: bool = False,
    finetune: bool = False,
) -> ScheduledDenoiser:
    """The :class:`ScheduledDenoiser` of the options ``method.denoiser, lam, sigma_max, sigma_min, ensemble``
    (``sigma_min=None``: the task's told noise std, at least 1/255); ``finetune``: the denoiser's weights are trained too."""
    require(denoiser is not None, "method.denoiser", "needs a trained denoiser: scripts/train_denoiser.py --out FILE, then method.denoiser=FILE")
    floor = max(assumed.noise_std or 0.0, 1 / 255) if sigma_min is None else sigma_min
    net = load_denoiser(denoiser)
    if finetune:
        net.requires_grad_(True).train()
    return ScheduledDenoiser(net, iterations, lam, sigma_max, floor, trained, ensemble)


AIDED = ("pnp", "neural_proximal_gradient")


class DNNAided(_LearnsStart, IterativeMethod):
    r"""DNN-aided inference with the assumed operator.

    ``pnp``: plug-and-play HQS (:class:`~mbdl.algorithms.half_quadratic.HalfQuadraticSplitting`) with a Gaussian
    denoiser trained once (``denoiser``: the file of :func:`save_denoiser`), at noise levels :math:`\sigma_t`
    falling geometrically from ``sigma_max`` to ``sigma_min`` and penalties :math:`\rho_t = \lambda/\sigma_t^2`;
    nothing is trained, so the same weights serve every operator. ``neural_proximal_gradient`` (Mardani et al. 2018):
    :math:`s \leftarrow \mathcal P(s - \mu_t A^H(As - x))` with one residual CNN :math:`\mathcal P` (a DnCNN) shared
    over the iterations, trained end to end.

    Args:
        assumed: the task's assumed linear inverse problem.
        algorithm: ``pnp`` or ``neural_proximal_gradient``.
        iterations: iterations.
        denoiser: pnp: the saved denoiser.
        lam: pnp: :math:`\lambda`.
        sigma_max, sigma_min: pnp: the first and last noise levels (``sigma_min=None``: the told noise std, at least 1/255).
        ensemble: pnp: the denoiser's geometric self-ensemble (:class:`ScheduledDenoiser`): ``none``, ``periodic``, ``full``.
        channels, layers: neural proximal gradient: its CNN.
        step: neural proximal gradient: initial step (``None``: :math:`1/\|A\|^2`).
    """

    def __init__(
        self,
        assumed: LinearInverseProblem,
        algorithm: str = "pnp",
        iterations: int = 8,
        denoiser: str | None = None,
        lam: float = 1e-4,
        sigma_max: float = 50 / 255,
        sigma_min: float | None = None,
        ensemble: str = "none",
        channels: int = 32,
        layers: int = 5,
        step: float | None = None,
    ) -> None:
        super().__init__(assumed)
        check_choice(algorithm, "method.algorithm", AIDED)
        check_choice(ensemble, "method.ensemble", dihedral.ENSEMBLES)
        check_positive(iterations, "method.iterations", integer=True)
        operator = assumed.operator
        self.start = LinearStart(operator)
        self.pnp = algorithm == "pnp"
        if self.pnp:
            prior = pnp_prior(assumed, denoiser, iterations, lam, sigma_max, sigma_min, ensemble)
            self.algorithm = HalfQuadraticSplitting(operator, iterations, prior, prior.penalty, start=self.start)
        else:
            DnCNN(channels, layers)  # validates the options
            self.algorithm = NeuralProximalGradient(operator, iterations, partial(DnCNN, channels, layers), tied=True, step=step, start=self.start)

    @property
    def closed_form(self) -> ClosedForm | None:
        """pnp on block compressive sensing: its start :math:`s^0 = Q y` (ISTA-Net's Qinit) is fitted to the training
        pairs in closed form, the one thing it learns (from :math:`\\Phi^+ y`, 7 dB at CS 25 %, 30 HQS iterations end
        4 dB below the linear start on Set11; docs/imaging.md). Otherwise nothing is fitted (the start is :math:`A^H x`)."""
        return ClosedForm("discriminative", ("supervised",)) if self.pnp and self.start.blockwise else None

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        """Fit the start's :math:`Q` to the training pairs. Returns 0: :math:`Q` is not counted, as in every method with
        this start (ISTA-Net⁺, MoDL, ...), nor is the frozen denoiser."""
        self.start.observe(x, s)
        return 0

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        if (waiting := self.observe(x, objective)) is not None:
            return waiting
        return objective(self(x))
