r"""A narrowband sensor array: positions, gains and phases, and its steering vectors.

Positions are in half-wavelengths, so sensor :math:`n` of a half-wavelength uniform linear
array (ULA) sits at :math:`d_n = n`. The response of sensor :math:`n` to a far-field source at
angle :math:`\theta` (radians from broadside) is

.. math::  a_n(\theta) = g_n\, e^{j\phi_n}\, e^{j\pi d_n \sin\theta},

so on the nominal ULA (:math:`g = 1, \phi = 0, d_n = n`) :math:`a(\theta) = [1, z, \dots, z^{N-1}]^\top`
with :math:`z = e^{j\pi\sin\theta}`: the polynomial that Root-MUSIC roots and the shift
invariance :math:`a_{n+1} = z\,a_n` that ESPRIT uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SensorArray:
    """An array of ``N`` sensors (float64 tensors of shape ``(N,)``).

    Attributes:
        positions: :math:`d_n` in half-wavelengths.
        gain: :math:`g_n`.
        phase: :math:`\\phi_n` in radians.
    """

    positions: Tensor
    gain: Tensor
    phase: Tensor

    @classmethod
    def ula(cls, n: int) -> SensorArray:
        """The nominal half-wavelength ULA of ``n`` sensors."""
        return cls(torch.arange(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64))

    @classmethod
    def perturbed(cls, n: int, position_error: float, gain_error: float, phase_error: float, generator: torch.Generator) -> SensorArray:
        r"""A ULA with calibration errors of levels :math:`\eta`, sensor 0 being the unperturbed reference.

        :math:`d_n = n + \eta_d \epsilon_n`, :math:`g_n = |1 + \eta_g \epsilon'_n|`,
        :math:`\phi_n = \eta_\phi \epsilon''_n` with :math:`\epsilon \sim \mathcal N(0, 1)` i.i.d.
        """
        noise = torch.randn(3, n, generator=generator, dtype=torch.float64)
        noise[:, 0] = 0.0
        nominal = cls.ula(n)
        return cls(
            nominal.positions + position_error * noise[0],
            (1.0 + gain_error * noise[1]).abs(),
            phase_error * noise[2],
        )

    @property
    def size(self) -> int:
        return len(self.positions)

    def steering(self, theta: Tensor) -> Tensor:
        """Steering matrix :math:`A(\\theta)` ``(..., N, K)`` for angles ``theta`` ``(..., K)`` in radians."""
        theta = theta.to(torch.float64)
        response = torch.polar(self.gain, self.phase)  # (N,)
        phase = math.pi * self.positions[:, None] * torch.sin(theta)[..., None, :]
        return response[:, None] * torch.polar(torch.ones_like(phase), phase)

    def steering_derivative(self, theta: Tensor) -> Tensor:
        r""":math:`D = [\partial a(\theta_k) / \partial \theta_k]_k`, ``(..., N, K)``: :math:`j\pi d_n \cos\theta_k\, a_n(\theta_k)`."""
        theta = theta.to(torch.float64)
        factor = 1j * math.pi * self.positions[:, None] * torch.cos(theta)[..., None, :]
        return factor * self.steering(theta)

