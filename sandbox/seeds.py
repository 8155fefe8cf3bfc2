"""Seeds on the command line: ``--seeds 0-4``, ``--seeds 0,3,7``, ``--seed 3``.

A list of seeds is a set of distinct, non-negative integers, at most
:data:`MAX_SEEDS` of them. A seed given twice is refused, not counted twice
(``0,0,0`` would otherwise report three passes for one run), and the size of a
range is checked before any list is built (``0-999999999`` is refused at once,
not after allocating gigabytes).
"""

from __future__ import annotations

import argparse
import re

#: The most seeds one command may run: 100000 quick runs are already days of CPU.
MAX_SEEDS = 100_000
#: Seeds are stored as JSON numbers and handed to ``np.random.default_rng``: keep them int64.
MAX_SEED = 2**63 - 1

_PART = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ``"0-1,5"`` -> [0, 1, 5].

    Raises
    ------
    argparse.ArgumentTypeError
        On a malformed list, a negative seed, a backwards range, a seed given
        more than once, or more than :data:`MAX_SEEDS` seeds in all.
    """
    if not isinstance(text, str) or not text.strip():
        raise argparse.ArgumentTypeError(f"--seeds: expected e.g. '0-4' or '0,3,7', got {text!r}")
    parts = []
    for part in text.split(","):
        m = _PART.fullmatch(part)
        if not m:
            hint = " (seeds are integers >= 0)" if part.strip().startswith("-") else ""
            raise argparse.ArgumentTypeError(
                f"--seeds: expected e.g. '0-4' or '0,3,7', got {text!r}{hint}"
            )
        if max(len(m[1]), len(m[2] or "")) > 19 or int(m[2] or m[1]) > MAX_SEED:
            raise argparse.ArgumentTypeError(
                f"--seeds: seeds go up to 2**63 - 1, got {part.strip()!r}"
            )
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi < lo:
            raise argparse.ArgumentTypeError(f"--seeds: range {part.strip()!r} runs backwards")
        parts.append((lo, hi))
    count = sum(hi - lo + 1 for lo, hi in parts)
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"--seeds: {text!r} names {count} seeds; at most {MAX_SEEDS} are allowed"
        )
    seeds = [s for lo, hi in parts for s in range(lo, hi + 1)]
    seen, repeated = set(), []
    for s in seeds:
        if s in seen and s not in repeated:
            repeated.append(s)
        seen.add(s)
    if repeated:
        shown = ", ".join(map(str, repeated[:10])) + (" ..." if len(repeated) > 10 else "")
        raise argparse.ArgumentTypeError(
            f"--seeds: each seed may appear once; {text!r} repeats {shown}"
        )
    return seeds


def seed_arg(text: str) -> int:
    """One seed (``--seed S``): an integer in ``[0, 2**63)``."""
    try:
        seed = int(text.strip()) if len(text.strip()) <= 20 else None
    except (AttributeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if seed is None or not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text!r}")
    return seed


def format_seeds(seeds) -> str:
    """The shortest ``--seeds`` text for ``seeds``: ``0-199``, ``0,2,5`` or ``0-4,9``."""
    seeds = list(seeds)
    if not seeds:
        return ""
    runs, start = [], seeds[0]
    for prev, cur in zip(seeds, [*seeds[1:], None], strict=True):
        if cur is None or cur != prev + 1:
            runs.append((start, prev))
            start = cur
    return ",".join(
        f"{a}-{b}" if b - a >= 2 else ",".join(map(str, range(a, b + 1))) for a, b in runs
    )
