"""SPICE text that is safe to write: numbers, inert comments and titles, ``.options`` cards.

Everything that reaches a netlist goes through these functions: numbers as deterministic text
(:func:`spice_number`), user text (titles, task names, paths) as one inert line of printable ASCII
(:func:`spice_comment_text`), and a final check that no line of a compiled netlist could act as an
ngspice command (:func:`check_inert`). The netlist compiler (:mod:`.circuit`) and the clamp
models (:mod:`.clamps`) write their lines with them.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import InvalidInputError

#: Neuron names become node and element names: identifiers only, whatever produced them.
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def spice_number(x: float) -> str:
    """A number as SPICE text: shortest repr with 12 significant digits (deterministic).

    A non-finite value (``inf`` from ``1 / (g * beta)`` with a tiny beta, say) is refused: ngspice
    would read ``inf`` as a node name or fail far from the cause."""
    x = float(x)
    if not np.isfinite(x):
        raise InvalidInputError(
            f"A value of the netlist is {x} (not finite); a setting is too small or too large for a "
            "circuit (e.g. beta, gamma or a unit near 0).")
    if x == 0:
        return "0"
    return f"{x:.12g}"


def spice_comment_text(text: object, max_len: int | None = None) -> str:
    """``text`` made inert for a netlist title or ``*`` comment: one line of printable ASCII.

    Anything from a user (a model file's path, a task name, a title) reaches a netlist only
    through this function. Newlines would start new SPICE cards (``.control`` / ``shell ...``
    runs a shell command in ``ngspice -b``), so every character outside printable ASCII, and the
    backslash, is written as a Python escape (``\\n``, ``\\x5c``, ``\\u2028``); an escape ends in a
    letter or digit, so the result never ends in a continuation backslash. Text longer than
    ``max_len`` (default :data:`deepcircuit.limits.MAX_NETLIST_TEXT`) is cut and ends in ``...``.
    """
    from ..limits import MAX_NETLIST_TEXT

    max_len = MAX_NETLIST_TEXT if max_len is None else max(int(max_len), 4)
    out = []
    for ch in str(text):
        if " " <= ch <= "~" and ch != "\\":
            out.append(ch)
        elif ch == "\\":
            out.append("\\x5c")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    s = "".join(out)
    return s if len(s) <= max_len else s[: max_len - 3] + "..."


def check_inert(lines: list[str]) -> None:
    """Refuse a netlist with a line that could act as more than text (see :func:`spice_comment_text`)."""
    # Defence in depth: whatever a future change interpolates, a line with a control character,
    # a non-ASCII character or an ngspice '*#' control comment never leaves compile_netlist.
    for n, ln in enumerate(lines, 1):
        if not (ln.isascii() and ln.isprintable()) or ln.startswith("*#"):
            raise InvalidInputError(f"Line {n} of the netlist would not be inert: {spice_comment_text(ln, 80)!r}; "
                                    "text must reach a netlist through spice_comment_text.")


def title_line(title: str) -> str:
    """The first line of a netlist (its title), made inert."""
    # The first line of a netlist is its title. ngspice treats a title starting with '*ng_script'
    # as a control script, so a title is made inert and always starts with a letter or digit.
    s = spice_comment_text(title)
    return s if s[:1].isalnum() else "deepcircuit netlist: " + s


def option_text(key: object, value: object) -> str:
    """One ``key=value`` of an ``.options`` card; keys are identifiers, values numbers or words."""
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", key):
        raise InvalidInputError(f"An ngspice option name must be a word like 'reltol'; got {key!r}.")
    if isinstance(value, str):
        if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,32}", value):
            raise InvalidInputError(
                f"The ngspice option {key}= must be a number or a word of letters, digits, '.', '+', '-', "
                f"'_'; got {value!r}.")
        return f"{key}={value}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"The ngspice option {key}= must be a number or a word; got {value!r}.")
    if isinstance(value, (int, np.integer)) and abs(int(value)) < 10 ** 15:
        return f"{key}={int(value)}"  # an integer option (seed) stays an integer
    return f"{key}={spice_number(value)}"
