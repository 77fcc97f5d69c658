"""Command-line options of the circuit's hardware models (synapse transconductor), shared by
``train``, ``export`` and ``compare``."""

from __future__ import annotations

import argparse


def add_transconductor_arguments(p: argparse.ArgumentParser) -> None:
    """``--transconductor`` and the OTA parameters (defaults: :class:`~deepcircuit.substrates.chip.TransconductorModel`)."""
    from ..substrates.chip import TRANSCONDUCTOR_KINDS, TransconductorModel as T

    p.add_argument("--transconductor", default=None, choices=list(TRANSCONDUCTOR_KINDS),
                   help="synapse model of the SPICE circuit: ideal 'vccs' (default) or 'ota' (tanh-limited "
                        "to +-I_bias, output resistance, input offset, bias current from a supply VDD)")
    p.add_argument("--ota-linear-range", type=float, default=None,
                   help=f"OTA linear range in units of V_scale (default {T.linear_range:g}; the bias "
                        "current and energy scale with it)")
    p.add_argument("--ota-gain", type=float, default=None, help=f"OTA intrinsic gain gm*r_out (default {T.gain:g}: cascoded)")
    p.add_argument("--ota-offset", type=float, default=None, help=f"OTA input offset, rms volts (default {T.offset:g})")


def transconductor_from_args(args):
    """The :class:`TransconductorModel` the arguments ask for, or None (nothing asked)."""
    from ..substrates.chip import TransconductorModel
    from ..errors import InvalidInputError

    params = {k: v for k, v in {"linear_range": args.ota_linear_range, "gain": args.ota_gain,
                                "offset": args.ota_offset}.items() if v is not None}
    if args.transconductor is None and not params:
        return None
    if params and args.transconductor != "ota":
        raise InvalidInputError("--ota-linear-range, --ota-gain and --ota-offset need --transconductor ota.")
    return TransconductorModel(kind=args.transconductor, **params)
