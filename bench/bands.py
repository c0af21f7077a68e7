"""Benchmark: generation at other bands than 200–300, against the default band.

    .venv/bin/python bench/bands.py [--households 50000] [--seed 4]
                                    [--bands 30-50,100-150,500-800]

Generates the seeded sample county once at the default band (the baseline, in the
same run) and once at each band asked for (micro-grids of 30–50 households, large
grids of 500–800, ...). Prints, for each: seconds and the ratio to the baseline,
grids in band, the causes of the grids out of band (``search_timed_out`` is the
engine giving up; every other cause is a proof) and the violations
:func:`geo.gridding.checks.check_plan` finds (0 is the only right answer).
"""

from __future__ import annotations

import argparse
import collections
import time

from geo.gridding.checks import check_plan
from geo.gridding.generate import generate_grids
from geo.sample import generate_county


def _run(county, lo: float, hi: float) -> dict:
    t = time.perf_counter()
    plan = generate_grids(
        county.households, county.areas, min_households=lo, max_households=hi
    )
    seconds = time.perf_counter() - t
    causes = collections.Counter(
        e.get("cause") or "none"
        for e in plan.report["exceptions"]
        if e["kind"] == "out_of_band"
    )
    violations = check_plan(
        plan, county.households, county.areas, min_households=lo, max_households=hi
    )
    return {
        "seconds": seconds,
        "grids": len(plan.grids),
        "in_band": plan.report["metrics"]["in_band_share"],
        "causes": dict(causes),
        "violations": len(violations),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--households", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument(
        "--bands",
        default="30-50,100-150,500-800",
        type=lambda s: [tuple(float(v) for v in b.split("-")) for b in s.split(",")],
    )
    args = ap.parse_args()
    county = generate_county(args.households, seed=args.seed)
    print(f"county: {len(county.households)} households (seed {args.seed})")
    base = _run(county, 200, 300)
    rows = [((200.0, 300.0), base)]
    rows += [(band, _run(county, *band)) for band in args.bands]
    for (lo, hi), r in rows:
        print(
            f"band {lo:g}-{hi:g}: {r['seconds']:.1f} s "
            f"({r['seconds'] / base['seconds']:.1f}x the 200-300 run), "
            f"{r['grids']} grids, in band {r['in_band']:.2%}, out of band by cause "
            f"{r['causes'] or '-'}, check_plan violations {r['violations']}"
        )


if __name__ == "__main__":
    main()
