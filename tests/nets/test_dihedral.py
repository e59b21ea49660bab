"""The dihedral self-ensembles of mbdl.nets.dihedral, and plug-and-play's denoiser ensembled with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from mbdl.config import ConfigError
from mbdl.nets import dihedral


def d4_orbit(image: np.ndarray) -> set[bytes]:
    """The orbit of a square ``image`` under the group that a left-right flip and a transpose generate (numpy), as bytes."""
    seen, frontier = {image.tobytes()}, [image]
    while frontier:
        new = []
        for a in frontier:
            for b in (np.fliplr(a), a.T):
                if b.tobytes() not in seen:
                    seen.add(np.ascontiguousarray(b).tobytes())
                    new.append(np.ascontiguousarray(b))
        frontier = new
    return seen


def test_the_eight_transforms_are_the_square_group_and_inverted():
    """g_k for k = 0..7 are the 8 elements of D4 (the orbit of a generic square under flips and transposes, by numpy),
    each undone by its inverse, also on a non-square image."""
    v = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    orbit = {dihedral.transform(v, k)[0, 0].numpy().tobytes() for k in range(dihedral.ORDER)}
    assert len(orbit) == 8 and orbit == d4_orbit(v[0, 0].numpy())
    wide = torch.rand(3, 2, 4, 7, dtype=torch.float64)
    for k in range(dihedral.ORDER):
        assert torch.equal(dihedral.inverse(dihedral.transform(wide, k), k), wide)
        assert dihedral.transform(wide, k).shape[-2:] == ((7, 4) if k % 2 else (4, 7))


def test_the_full_ensemble_is_equivariant_and_keeps_an_equivariant_map():
    """With f a convolution by a random (non-symmetric) kernel, f̄(g v) = g f̄(v) for every g although
    f(g v) ≠ g f(v); a map that already is equivariant (a kernel with the square's symmetry) is kept."""
    generator = torch.Generator().manual_seed(1)
    kernel = torch.rand(1, 1, 3, 3, generator=generator, dtype=torch.float64)
    v = torch.rand(2, 1, 6, 6, generator=generator, dtype=torch.float64)

    def f(u: torch.Tensor) -> torch.Tensor:
        return functional.conv2d(u, kernel, padding=1)

    assert not torch.allclose(f(dihedral.transform(v, 1)), dihedral.transform(f(v), 1))
    for k in range(dihedral.ORDER):
        assert torch.allclose(dihedral.ensemble(f, dihedral.transform(v, k)), dihedral.transform(dihedral.ensemble(f, v), k), atol=1e-12)
    symmetric = torch.tensor([[1.0, 2.0, 1.0], [2.0, 5.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float64).view(1, 1, 3, 3)
    assert torch.allclose(dihedral.ensemble(lambda u: functional.conv2d(u, symmetric, padding=1), v), functional.conv2d(v, symmetric, padding=1), atol=1e-12)


def test_periodic_ensemble_averages_to_the_full_one_over_eight_iterations(denoiser_file):
    """PnP's prior with ``ensemble=periodic`` denoises iteration t in orientation g_(t mod 8): at a constant noise level
    its mean over 8 iterations is the full ensemble, and the full one is equivariant for the trained denoiser."""
    from mbdl.methods.imaging import ScheduledDenoiser, load_denoiser

    net = load_denoiser(denoiser_file).double()
    periodic, full = (ScheduledDenoiser(net, 16, 1e-4, 0.05, 0.05, ensemble=e).double() for e in ("periodic", "full"))
    plain = ScheduledDenoiser(net, 16, 1e-4, 0.05, 0.05).double()
    v = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        mean = sum(periodic(v, t) for t in range(8, 16)) / 8
        assert torch.allclose(mean, full(v, 3), atol=1e-12)
        assert torch.allclose(periodic(v, 8), plain(v, 8), atol=1e-12)
        assert not torch.allclose(periodic(v, 1), plain(v, 1), atol=1e-6)
        for k in range(dihedral.ORDER):
            assert torch.allclose(full(dihedral.transform(v, k), 0), dihedral.transform(full(v, 0), k), atol=1e-12)


def test_an_unknown_ensemble_is_refused_naming_the_choices(denoiser_file):
    from mbdl.methods.imaging import DNNAided, UnfoldedNet
    from mbdl.operators import MaskedFourier
    from mbdl.tasks.inverse_problem import LinearInverseProblem

    problem = LinearInverseProblem(MaskedFourier(torch.ones(8, 8), real=True))
    for method in (lambda: DNNAided(problem, "pnp", denoiser=str(denoiser_file), ensemble="x8"), lambda: UnfoldedNet(problem, "modl", ensemble="x8")):
        with pytest.raises(ConfigError, match=r"method.ensemble.*none, periodic, full"):
            method()
