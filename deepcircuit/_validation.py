"""Argument checks shared by the public entry points.

Each helper takes the argument's name so the message says which input is wrong and what is
allowed, in the form "The 'tol' parameter must be a float > 0; got -1."
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import InvalidInputError, InvalidTypeError


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise listing them."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(
            f"The {name!r} parameter must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float after checking it is a finite real in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"The {name!r} parameter must be a real number; got {value!r}.")
    v = float(value)
    if not np.isfinite(v):
        raise InvalidInputError(f"The {name!r} parameter must be finite; got {value!r}.")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise InvalidInputError(f"The {name!r} parameter must be in {rng}; got {value!r}.")
    return v


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"The {name!r} parameter must be an integer; got {value!r}.")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        rng = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise InvalidInputError(f"The {name!r} parameter must be an integer in {rng}; got {value!r}.")
    return v


def check_array(name: str, value: Any, *, shape: Sequence[int | None] | None = None,
                finite: bool = True, dtype: type = float) -> np.ndarray:
    """Return ``value`` as a new ndarray after checking its shape (None = any) and finiteness."""
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"The {name!r} parameter must be a numeric array; got {type(value).__name__}: {exc}") from None
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise InvalidInputError(f"The {name!r} parameter must have shape {want}; got {arr.shape}.")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidInputError(
            f"The {name!r} parameter must contain only finite numbers; "
            f"entry {tuple(int(i) for i in bad)} is {float(arr[tuple(bad)])}.")
    return arr
