"""Linear operators: adjoints, norms and regularised inverses against their dense matrices, real and complex."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from mbdl.operators import (
    BlockCompressiveSensing,
    Composition,
    Convolution,
    Decimation,
    Diagonal,
    LinearOperator,
    MaskedFourier,
    Matrix,
)

F64, C128 = torch.float64, torch.complex128


def randn(*shape: int, dtype: torch.dtype = F64, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def mask(*shape: int, seed: int = 3) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) < 0.4).to(F64)


# name -> a float64 operator; complex kernels/matrices where the name says so
OPERATORS: dict[str, Callable[[], LinearOperator]] = {
    "matrix": lambda: Matrix(randn(7, 5)),
    "matrix_complex": lambda: Matrix(randn(7, 5, dtype=C128)),
    "diagonal": lambda: Diagonal(randn(3, 4)),
    "diagonal_complex": lambda: Diagonal(randn(6, dtype=C128)),
    "decimation_1d": lambda: Decimation((10,), factor=3, offset=1),
    "decimation_2d": lambda: Decimation((6, 8), factor=(2, 3)),
    "convolution_1d_circular": lambda: Convolution(randn(5), (16,), "circular"),
    "convolution_1d_zero": lambda: Convolution(randn(5), (16,), "zero"),
    "convolution_1d_zero_even": lambda: Convolution(randn(4), (11,), "zero"),
    "convolution_1d_zero_long_kernel": lambda: Convolution(randn(23), (12,), "zero"),
    "convolution_2d_circular": lambda: Convolution(randn(3, 5), (2, 8, 10), "circular"),
    "convolution_2d_zero": lambda: Convolution(randn(3, 4), (7, 9), "zero"),
    "convolution_2d_complex": lambda: Convolution(randn(3, 3, dtype=C128), (6, 7), "circular"),
    "masked_fourier": lambda: MaskedFourier(mask(6, 8)),
    "masked_fourier_weights_complex": lambda: MaskedFourier(randn(2, 5, 4, dtype=C128)),
    "masked_fourier_real_images": lambda: MaskedFourier(mask(6, 8), real=True),
    "block_cs": lambda: BlockCompressiveSensing(randn(5, 16), (8, 12), block=4),
    "block_cs_padded": lambda: BlockCompressiveSensing(randn(6, 16), (2, 9, 6), block=4),
    "block_cs_smaller_than_a_block": lambda: BlockCompressiveSensing(randn(6, 16), (3, 5), block=4),
    "composition_decimated_convolution": lambda: Decimation((12,), 3, 1) @ Convolution(randn(7), (12,), "zero") @ Diagonal(randn(12).abs() + 0.5),
    "composition_complex": lambda: Composition(Matrix(randn(4, 6, dtype=C128)), Convolution(randn(3, dtype=C128), (6,), "circular")),
}
REAL_DOMAIN = {"masked_fourier_real_images"}  # adjoint for Re<.,.>: real signals only


def operator_and_inputs(name: str, complex_inputs: bool) -> tuple[LinearOperator, torch.Tensor, torch.Tensor]:
    """The operator, a signal batch ``(2, *in_shape)`` and a measurement batch ``(2, *out_shape)``."""
    A = OPERATORS[name]()
    out_dtype = A(torch.zeros(A.in_shape, dtype=F64)).dtype
    s = randn(2, *A.in_shape, dtype=C128 if complex_inputs else F64, seed=1)
    x = randn(2, *A.out_shape, dtype=C128 if complex_inputs or out_dtype.is_complex else F64, seed=2)
    return A, s, x


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).sum()


def dense(A: LinearOperator, complex_inputs: bool) -> torch.Tensor:
    """The matrix of A in float64, complex for complex inputs."""
    D = A.dense()
    return D.to(C128 if complex_inputs or D.is_complex() else F64)


def real_dense(A: LinearOperator) -> torch.Tensor:
    """The matrix of A as a map of real vectors (real and imaginary parts of the output stacked)."""
    D = A.dense()
    return torch.cat([D.real, D.imag]) if D.is_complex() else D


def cases() -> list:
    return [pytest.param(name, c, id=f"{name}-{'complex' if c else 'real'}") for name in OPERATORS for c in (False, True) if not (c and name in REAL_DOMAIN)]


@pytest.mark.parametrize(("name", "complex_inputs"), cases())
def test_adjoint_identity_to_1e_10(name, complex_inputs):
    A, s, x = operator_and_inputs(name, complex_inputs)
    left, right = inner(A(s), x), inner(s, A.adjoint(x))
    if name in REAL_DOMAIN:
        left = left.real
    assert abs(left - right) <= 1e-10 * max(1.0, abs(left))
    assert A(s).shape == (2, *A.out_shape) and A.adjoint(x).shape == (2, *A.in_shape)


@pytest.mark.parametrize(("name", "complex_inputs"), cases())
def test_forward_adjoint_and_gram_are_the_dense_matrix(name, complex_inputs):
    A, s, x = operator_and_inputs(name, complex_inputs)
    D = dense(A, complex_inputs)
    torch.testing.assert_close(A(s).reshape(2, -1), s.reshape(2, -1).to(D.dtype) @ D.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(A.gram(s), A.adjoint(A(s)), rtol=0, atol=1e-12, check_dtype=False)  # a real Gram may stay real
    if name not in REAL_DOMAIN:
        torch.testing.assert_close(A.adjoint(x).reshape(2, -1), x.reshape(2, -1).to(D.dtype) @ D.conj(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(OPERATORS))
def test_norm2_is_the_dense_spectral_norm_to_1e_6(name):
    A = OPERATORS[name]()
    expected = torch.linalg.matrix_norm(real_dense(A) if name in REAL_DOMAIN else A.dense(), ord=2).item() ** 2
    assert abs(A.norm2() - expected) <= 1e-6 * expected
    assert A.norm2() is A.norm2()  # cached


@pytest.mark.parametrize(("name", "complex_inputs"), cases())
def test_solve_is_the_dense_regularised_inverse(name, complex_inputs):
    A, s, _ = operator_and_inputs(name, complex_inputs)
    rho = 0.3
    D = real_dense(A) if name in REAL_DOMAIN else dense(A, complex_inputs)
    expected = torch.linalg.solve(D.mH @ D + rho * torch.eye(D.shape[1], dtype=D.dtype), s.reshape(2, -1).to(D.dtype).T).T
    torch.testing.assert_close(A.solve(rho, s).reshape(2, -1), expected, rtol=1e-9, atol=1e-10, check_dtype=False)  # a real inverse may stay real
    torch.testing.assert_close(A.solve(torch.tensor(rho, dtype=F64), s), A.solve(rho, s))


@pytest.mark.parametrize("name", ["matrix", "matrix_complex", "convolution_1d_circular", "convolution_2d_zero", "masked_fourier", "masked_fourier_real_images", "decimation_1d", "diagonal", "block_cs", "block_cs_padded", "composition_decimated_convolution"])
def test_solve_is_differentiable_in_rho_and_the_right_hand_side(name):
    A = OPERATORS[name]()
    rho = torch.tensor(0.7, dtype=F64, requires_grad=True)
    rhs = randn(2, *A.in_shape, dtype=F64 if name in REAL_DOMAIN or not name.endswith("complex") else C128, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(lambda r, b: A.solve(r, b), (rho, rhs))


def test_convolution_is_scipys():
    h, s = randn(5), randn(16, seed=1)
    torch.testing.assert_close(Convolution(h, (16,), "zero")(s), torch.as_tensor(signal.convolve(s.numpy(), h.numpy(), mode="same")))
    h_even = randn(4)
    torch.testing.assert_close(Convolution(h_even, (16,), "zero")(s), torch.as_tensor(signal.convolve(s.numpy(), h_even.numpy(), mode="same")))
    h2, image = randn(3, 4), randn(2, 7, 9, seed=1)
    expected = np.stack([signal.convolve2d(im, h2.numpy(), mode="same") for im in image.numpy()])
    torch.testing.assert_close(Convolution(h2, (7, 9), "zero")(image), torch.as_tensor(expected))
    h3 = randn(3, 5)  # odd sizes: ndimage's centre is the same
    expected = np.stack([ndimage.convolve(im, h3.numpy(), mode="wrap") for im in image.numpy()])
    torch.testing.assert_close(Convolution(h3, (7, 9), "circular")(image), torch.as_tensor(expected))


def test_masked_fourier_is_the_masked_orthonormal_fft_and_its_real_adjoint_is_the_zero_filled_image():
    M, image = mask(6, 8), randn(3, 6, 8, seed=1)
    y = MaskedFourier(M)(image)
    torch.testing.assert_close(y, torch.as_tensor(M.numpy() * np.fft.fft2(image.numpy(), norm="ortho")))
    zero_filled = np.real(np.fft.ifft2(M.numpy() * np.fft.fft2(image.numpy(), norm="ortho"), norm="ortho"))  # ISTA-Net's
    torch.testing.assert_close(MaskedFourier(M, real=True).adjoint(y), torch.as_tensor(zero_filled))


def test_block_compressive_sensing_measures_istanet_blocks_in_raster_order():
    B, phi, image = 4, randn(5, 16), randn(9, 6, seed=1)
    A = BlockCompressiveSensing(phi, (9, 6), block=B)
    padded = torch.zeros(12, 8, dtype=F64)
    padded[:9, :6] = image
    expected = torch.stack([phi @ padded[r * B : (r + 1) * B, c * B : (c + 1) * B].flatten() for r in range(3) for c in range(2)])
    torch.testing.assert_close(A(image), expected)
    back = A.adjoint(expected)  # the back-projection of the padded image, cropped to the image
    full = torch.stack([phi.T @ y for y in expected]).reshape(3, 2, B, B).transpose(1, 2).reshape(12, 8)
    torch.testing.assert_close(back, full[:9, :6])


@pytest.mark.parametrize("operator_dtype", [torch.float32, F64])
@pytest.mark.parametrize("input_dtype", [torch.float32, F64, torch.complex64, C128])
@pytest.mark.parametrize("name", ["matrix", "convolution_2d_circular", "convolution_2d_zero", "masked_fourier", "block_cs_padded", "decimation_2d", "composition_decimated_convolution"])
def test_operators_compute_in_the_inputs_precision(name, operator_dtype, input_dtype):
    A = OPERATORS[name]().to(operator_dtype)
    s = randn(2, *A.in_shape, dtype=input_dtype)
    real = input_dtype.to_real() if input_dtype.is_complex else input_dtype
    out = A(s)
    assert out.dtype in (input_dtype, real.to_complex())
    assert A.adjoint(out).dtype == out.dtype and A.solve(0.5, s).dtype.to_real() == real


@pytest.mark.parametrize("name", list(OPERATORS))
def test_operators_are_exact_under_bf16_autocast(name):
    """Mixed-precision training is for the networks: under ``bf16-mixed`` every operator method gives the float32
    result bit for bit, and a bfloat16 input is computed in float32."""
    A = OPERATORS[name]().to(torch.float32)
    s = randn(2, *A.in_shape, dtype=torch.float32)
    x = A(s).detach()
    plain = [A(s), A.adjoint(x), A.gram(s), A.solve(0.5, s)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = [A(s), A.adjoint(x), A.gram(s), A.solve(0.5, s)]
        half_input = A(s.bfloat16()) if not s.is_complex() else A(s)
    for p, m in zip(plain, mixed):
        assert m.dtype == p.dtype and torch.equal(m, p)
    assert half_input.dtype in (torch.float32, torch.complex64)
    torch.testing.assert_close(half_input, A(s.bfloat16().float()), rtol=0, atol=0)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(OPERATORS))
def test_operators_move_with_to_device(name, device):
    A = OPERATORS[name]().to(device)
    s = randn(2, *A.in_shape).to(device)
    assert A(s).device.type == device and A.adjoint(A(s)).device.type == device and A.solve(0.5, s).device.type == device
    assert A.norm2() > 0 and A.dense().device.type == device


def test_composition_checks_the_shapes():
    with pytest.raises(ValueError, match=r"inner operator gives \(4,\), the outer one takes \(5,\)"):
        Matrix(randn(3, 5)) @ Matrix(randn(4, 2))
