"""Parsing helpers of the command line (option values, messages in the CLI's spelling, JSON),
kept apart from :mod:`bayesvc.cli` so that it stays small."""

from __future__ import annotations

import argparse
import re


class UsageError(Exception):
    """A command-line usage problem (reported like any other bad input)."""


#: API argument spellings in messages -> the CLI's options (see :func:`cli_spelling`)
_API_ARGUMENT = re.compile(r"\b(missing|marginalize|draws|tune|chains|random_seed)=('[^']*'|\w+)")
_OPTION = {"random_seed": "seed"}


def cli_spelling(message: str) -> str:
    """A library message with its argument spellings as the CLI's options, e.g. ``pass
    missing='drop'`` -> ``pass --missing drop``, ``marginalize=False`` -> ``--marginalize false``.

    >>> cli_spelling("pass missing='drop' to drop 2 incomplete rows")
    'pass --missing drop to drop 2 incomplete rows'
    >>> cli_spelling("try another parameterization (marginalize=False)")
    'try another parameterization (--marginalize false)'
    """
    def option(m):
        value = m.group(2).strip("'")
        return f"--{_OPTION.get(m.group(1), m.group(1))} {value.lower() if value in ('True', 'False') else value}"

    return _API_ARGUMENT.sub(option, message)


def _int_at_least(low: int):
    what = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)


def _one_line(err) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


def _parse_vc(items: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for item in items:
        name, sep, formula = item.partition("=")
        name, formula = name.strip(), formula.strip()
        if not sep or not name or not formula:
            raise UsageError(f"--vc expects NAME=FORMULA (e.g. cask='0 + C(cask)'), got {item!r}")
        if name in out:
            raise UsageError(f"--vc names the component {name!r} twice")
        out[name] = formula
    return out or None


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _csv_list(text: str | None, what: str, conv=str) -> list | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        out = [conv(t) for t in items]
    except ValueError:
        raise UsageError(f"{what} expects a comma-separated list of numbers, got {text!r}") from None
    if not out:
        raise UsageError(f"{what} is empty")
    return out
