r"""Recurrent networks: a GRU/LSTM sequence regressor and KalmanNet's gain network.

:class:`RecurrentNet` maps a sequence ``(b, T, d_in)`` to ``(b, T, d_out)`` with a linear read-out
of the hidden state and the current input, :math:`y_t = W [h_t; u_t] + c` (the skip from
:math:`u_t` lets a black box start from a linear map of the measurements).

:class:`KalmanGainNet` is the gain network of KalmanNet (Revach et al., IEEE TSP 2022,
"architecture 2"): three GRUs track the statistics of the process noise (:math:`Q`), of the
prior state error (:math:`\Sigma`) and of the innovation (:math:`S`), fed with the L2-normalised
features F1-F4, and fully connected layers map them to the gain :math:`K_t` ``(n, m)``:

* F1 observation difference :math:`x_t - x_{t-1}`; F2 innovation :math:`x_t - h(\hat s_{t|t-1})`;
* F3 evolution difference :math:`\hat s_{t-1} - \hat s_{t-2}`; F4 update difference :math:`\hat s_{t-1} - \hat s_{t-1|t-2}`.

Flow (as in the paper's Fig. 4): F4 -> FC5 -> GRU_Q; [GRU_Q, FC6(F3)] -> GRU_Σ -> FC1;
[FC1, FC7(F1, F2)] -> GRU_S; FC2([GRU_Σ, GRU_S]) = K_t; the backward flow FC3([GRU_S, K_t]),
FC4([GRU_Σ, FC3]) replaces the hidden state of GRU_Σ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

from mbdl.config import check_choice, check_positive

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
Net = TypeVar("Net", bound=nn.Module)


def seeded(seed: int | None, build: Callable[[], Net]) -> Net:
    """``build()`` with its random initialisation drawn from ``torch.manual_seed(seed)``, leaving the global
    generator as it was (``None``: from the global generator)."""
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class RecurrentNet(nn.Module):
    """A GRU or LSTM over a sequence with a linear read-out of ``[h_t; u_t]``.

    Args:
        input_size: ``d_in``; output_size: ``d_out``.
        hidden_size: width of each recurrent layer.
        layers: number of stacked recurrent layers.
        cell: ``"gru"`` or ``"lstm"``.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 64, layers: int = 2, cell: str = "gru") -> None:
        super().__init__()
        check_choice(cell, "method.cell", CELLS)
        check_positive(hidden_size, "method.hidden_size", integer=True)
        check_positive(layers, "method.layers", integer=True)
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden_size + input_size, output_size)

    def forward(self, u: Tensor) -> Tensor:
        """``(b, T, d_in) -> (b, T, d_out)``."""
        hidden, _ = self.rnn(u)
        return self.readout(torch.cat([hidden, u], dim=-1))


def _fc(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU())


class KalmanGainNet(nn.Module):
    """KalmanNet's gain network for states of size ``n`` and measurements of size ``m``.

    Args:
        n, m: state and measurement dimensions.
        in_mult: width multiplier of the input layers (KalmanNet: 5).
        out_mult: width multiplier of the hidden layer of FC2 (KalmanNet: 40).

    Call :meth:`reset` with the batch size before a sequence, then :meth:`forward` once per step.
    """

    def __init__(self, n: int, m: int, in_mult: int = 5, out_mult: int = 40) -> None:
        super().__init__()
        check_positive(in_mult, "method.in_mult", integer=True)
        check_positive(out_mult, "method.out_mult", integer=True)
        self.n, self.m = n, m
        self.fc5 = _fc(n, n * in_mult)  # F4, update difference
        self.fc6 = _fc(n, n * in_mult)  # F3, evolution difference
        self.fc7 = _fc(2 * m, 2 * m * in_mult)  # F1, F2 (observation difference, innovation)
        self.gru_q = nn.GRUCell(n * in_mult, n * n)
        self.gru_sigma = nn.GRUCell(n * n + n * in_mult, n * n)
        self.fc1 = _fc(n * n, m * m)
        self.gru_s = nn.GRUCell(m * m + 2 * m * in_mult, m * m)
        d_fc2 = m * m + n * n
        self.fc2 = nn.Sequential(nn.Linear(d_fc2, d_fc2 * out_mult), nn.ReLU(), nn.Linear(d_fc2 * out_mult, n * m))
        with torch.no_grad():  # the gain starts near zero (open-loop prediction): an untrained net cannot diverge
            self.fc2[-1].weight.mul_(0.01)
            self.fc2[-1].bias.zero_()
        self.fc3 = _fc(m * m + n * m, n * n)
        self.fc4 = _fc(n * n + n * n, n * n)
        self.h_q = self.h_sigma = self.h_s = torch.empty(0)

    def reset(self, batch: int, like: Tensor) -> None:
        """Hidden states at the start of a sequence: ``Q`` and ``S`` at the identity, ``Σ`` at zero (as KalmanNet)."""
        eye_n = torch.eye(self.n, dtype=like.dtype, device=like.device).flatten()
        eye_m = torch.eye(self.m, dtype=like.dtype, device=like.device).flatten()
        self.h_q = eye_n.expand(batch, -1)
        self.h_sigma = torch.zeros_like(self.h_q)
        self.h_s = eye_m.expand(batch, -1)

    def forward(self, obs_diff: Tensor, innovation: Tensor, evolution_diff: Tensor, update_diff: Tensor) -> Tensor:
        """The gain ``(b, n, m)`` from the features F1 ``(b, m)``, F2 ``(b, m)``, F3 ``(b, n)``, F4 ``(b, n)`` (normalised here)."""
        f1, f2, f3, f4 = (nnf.normalize(v, p=2, dim=-1, eps=1e-12) for v in (obs_diff, innovation, evolution_diff, update_diff))
        self.h_q = self.gru_q(self.fc5(f4), self.h_q)
        sigma = self.gru_sigma(torch.cat([self.h_q, self.fc6(f3)], -1), self.h_sigma)
        self.h_s = self.gru_s(torch.cat([self.fc1(sigma), self.fc7(torch.cat([f1, f2], -1))], -1), self.h_s)
        gain = self.fc2(torch.cat([sigma, self.h_s], -1))
        self.h_sigma = self.fc4(torch.cat([sigma, self.fc3(torch.cat([self.h_s, gain], -1))], -1))
        return gain.reshape(-1, self.n, self.m)
