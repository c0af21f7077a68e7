"""Fingerprints of plans for a fixed sample: run in two checkouts to prove a refactor
changed no plan (generation, micro-grids, rebalancing at 6k and 20k households).

    cd OLD_CHECKOUT && PYTHONPATH=. python /path/to/bench/identity.py > old.json
    cd NEW_CHECKOUT && PYTHONPATH=. python /path/to/bench/identity.py > new.json
    diff old.json new.json
"""

import hashlib
import json
import os
import sys

if os.path.exists("geo/generate.py"):
    from geo.generate import generate_grids, generate_micro_grids
    from geo.rebalance import rebalance
else:
    from geo.gridding.generate import generate_grids
    from geo.gridding.rebalance import rebalance
    from geo.gridding.staffing import generate_micro_grids
import geo.sample
from geo.sample import generate_county

# before 2026-12-01 the re-cut searches stopped at a wall-clock cap (1.5 s), so their
# plans depended on how busy the machine was; since then they count steps and the
# wall-clock cap is only a safety net. Comparing such old checkouts, lift their cap
# in both (GRIDMAP_IDENTITY_CAP_S=30) and compare runs that finish.
if os.environ.get("GRIDMAP_IDENTITY_CAP_S"):
    import geo.gridding._recut as _recut

    _recut.RECUT_CAP_S = float(os.environ["GRIDMAP_IDENTITY_CAP_S"])

print(geo.sample.__file__, generate_grids.__module__, file=sys.stderr)

out = {}
for n, seed in [(6000, 1), (20000, 0)]:
    c = generate_county(n, seed=seed)
    p = generate_grids(c.households, c.areas)
    a = p.assignments.sort_values("household_id")[["household_id", "grid_code"]]
    g = p.grids.sort_values("grid_code")
    out[f"gen-{n}"] = hashlib.sha256(
        a.to_csv(index=False).encode() + b"".join(g.geometry.to_wkb())
    ).hexdigest()
    m = generate_micro_grids(p, c.households)
    out[f"micro-{n}"] = hashlib.sha256(
        m.assignments.sort_values("household_id")[["household_id", "grid_code"]]
        .to_csv(index=False)
        .encode()
    ).hexdigest()
    keep = c.households.sample(frac=0.9, random_state=3)
    p0 = generate_grids(keep, c.areas)
    r = rebalance(p0.grids, p0.assignments, c.households)
    out[f"rebalance-{n}"] = hashlib.sha256(
        r.plan.assignments.sort_values("household_id")[["household_id", "grid_code"]]
        .to_csv(index=False)
        .encode()
        + r.changes.to_csv(index=False).encode()
    ).hexdigest()
print(json.dumps(out, indent=1))
