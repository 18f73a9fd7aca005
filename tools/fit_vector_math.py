#!/usr/bin/env python3
"""Fits the polynomial coefficients used by Sources/CPUKernels/VectorMath.swift.

Least squares on Chebyshev nodes (close to minimax) in float64, weighted for relative error, then prints
Swift literals. Rerun after changing an interval or a degree; the Swift tests measure the resulting error
in ulps against libm over dense sweeps, so a bad fit fails there.

    python3 tools/fit_vector_math.py
"""
import math
import numpy as np
from scipy.special import erf, erfc


def fit(f, lo, hi, degree, weight, basis):
    n = 4000
    t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    x = (lo + hi) / 2 + (hi - lo) / 2 * t
    A = np.stack([basis(x) ** i for i in range(degree + 1)], axis=1)
    w = weight(x)
    coef, *_ = np.linalg.lstsq(A * w[:, None], f(x) * w, rcond=None)
    approx = A @ coef
    err = np.max(np.abs((approx - f(x)) * w))
    return coef, err


def show(name, coef, err):
    print(f"// {name}: max weighted error {err:.3e}")
    print(f"static let {name}: [Float] = [" + ", ".join(f"{c:.9e}" for c in coef) + "]")


# erf(x) = x * P(x^2) on |x| <= 1, relative error.
c, e = fit(lambda x: erf(x) / x, 1e-6, 1.0, 6, lambda x: np.ones_like(x), lambda x: x * x)
show("erfSmall", c, e)
# erfc(x) = exp(-x^2) * Q(1/x) on 1 <= x <= 4 (erf rounds to 1 in float above 3.92), relative error.
c, e = fit(lambda x: erfc(x) * np.exp(x * x), 1.0, 4.0, 10, lambda x: 1 / (erfc(x) * np.exp(x * x)), lambda x: 1 / x)
show("erfcLarge", c, e)
# tanh(x) = x + x^3 * P(x^2) on |x| <= 0.625, relative error of tanh.
c, e = fit(lambda x: (np.tanh(x) - x) / x**3, 1e-3, 0.625, 5, lambda x: x**2 / (np.tanh(x) / x), lambda x: x * x)
show("tanhSmall", c, e)
