"""Shared bench helper: how a bench names the files it wrote."""

from __future__ import annotations

from pathlib import Path


def shown(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it, else in full.

    For the "wrote …" line at the end of a run: an ``--out`` outside the
    repository must not crash the bench after its figures are measured.

    Examples
    --------
    >>> shown(Path("/repo/bench/results/x.json"), Path("/repo"))
    'bench/results/x.json'
    >>> shown(Path("/elsewhere/x.json"), Path("/repo"))
    '/elsewhere/x.json'
    """
    full = path.resolve()
    base = root.resolve()
    return str(full.relative_to(base)) if full.is_relative_to(base) else str(full)
