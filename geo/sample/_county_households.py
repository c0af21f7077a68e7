"""Households and people of the sample county: sizes per area, names, rural and
urban households with their addresses, and the people who cover them."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo.sample._county_facts import (
    _APT_CONFIGS,
    _BIG_CONFIGS,
    _FULLWIDTH,
    _GIVEN,
    _MOBILE_PREFIX,
    _P_RURAL,
    _P_URBAN,
    _PLACE_A,
    _PLACE_B,
    _ROAD_SUFFIX,
    _STREET_NAMES,
    _SURNAMES,
    _TOWN_NAMES,
    _XIANG_NAMES,
    CITY,
    COORD_DECIMALS,
    COUNTY,
    PROVINCE,
    WGS84,
)

# --------------------------------------------------------------------------- sizes


def _distribute(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (exact sum)."""
    w = np.asarray(weights, dtype=float)
    raw = w / w.sum() * total
    base = np.floor(raw).astype(np.int64)
    rest = int(total - base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:rest]] += 1
    return base


def _split(
    rng: np.random.Generator, total: int, parts: int, *, floor: int, sigma: float
) -> np.ndarray:
    """Lognormal-ish split of ``total`` into ``parts`` sizes, each ``>= floor``."""
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    parts = max(1, min(parts, total // max(floor, 1)))
    floor = min(floor, total // parts)
    w = rng.lognormal(0.0, sigma, parts)
    return floor + _distribute(total - floor * parts, w)


def _plan_sizes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Household counts of communities (dense town) and rural villages."""
    logn = np.log10(n)
    n_town = max(round(0.3 * n), min(1_050, round(0.6 * n)))
    avg_comm = float(
        np.interp(logn, [3.3, 4.3, 5.3, 6.0], [1_050, 1_800, 3_000, 5_500])
    )
    n_comm = max(1, round(n_town / avg_comm))
    comm = _split(rng, n_town, n_comm, floor=min(700, n_town), sigma=0.4)

    n_rural = n - n_town
    m_v = float(np.interp(logn, [3.3, 4.3, 5.3, 6.0], [260, 380, 600, 950]))
    n_v = max(1, round(n_rural / m_v))
    k_small = k_mid = max(2 if n < 5_000 else 3, round(0.08 * n_v))
    k_large = max(1, round(0.03 * n_v)) if n_rural >= 8_000 else 0
    reserve = 40
    while (
        k_small * 40 + k_mid * 300 + k_large * 1_000 + reserve > n_rural
        and k_small + k_mid + k_large
    ):
        if k_large:
            k_large -= 1
        elif k_mid >= k_small and k_mid:
            k_mid -= 1
        else:
            k_small -= 1
    span = k_small * 150 + k_mid * 95 + k_large * 1_200
    need = k_small * 40 + k_mid * 300 + k_large * 1_000
    frac = float(np.clip((n_rural - reserve - need) / max(span, 1), 0.0, 1.0))
    special = np.concatenate(
        [
            40 + np.floor(rng.random(k_small) * 150 * frac),
            300 + np.floor(rng.random(k_mid) * 95 * frac),
            1_000 + np.floor(rng.random(k_large) * 1_200 * frac),
        ]
    ).astype(np.int64)
    rest = n_rural - int(special.sum())
    n_reg = max(1, n_v - len(special))
    regular = _split(rng, rest, n_reg, floor=30, sigma=0.6)
    return comm, np.concatenate([special, regular])


# --------------------------------------------------------------------------- names


def _township_names(rng: np.random.Generator, kinds: list[str]) -> list[str]:
    pools = {
        "街道": list(_STREET_NAMES),
        "镇": list(_TOWN_NAMES),
        "乡": list(_XIANG_NAMES),
    }
    used = {n for pool in pools.values() for n in pool}
    extra = iter(_unique_names(rng, len(kinds), exclude=used))
    out = []
    for kind in kinds:
        pool = pools[kind]
        out.append((pool.pop(0) if pool else next(extra)) + kind)
    return out


def _unique_names(
    rng: np.random.Generator,
    k: int,
    *,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """``k`` distinct two-character place names (湖仁, 沈家, ...)."""
    na, nb = len(_PLACE_A), len(_PLACE_B)
    out: list[str] = []
    seen = set(exclude)
    for flat in rng.permutation(na * nb):
        name = _PLACE_A[flat // nb] + _PLACE_B[flat % nb]
        if name[0] == name[1] or name in seen:
            continue
        seen.add(name)
        out.append(name)
        if len(out) == k:
            return out
    # more names than two-character combinations: add a third character
    i = 0
    while len(out) < k:
        name = (
            _PLACE_A[i % na]
            + _PLACE_B[(i // na) % nb]
            + _PLACE_B[(i // (na * nb)) % nb]
        )
        i += 1
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _person_names(rng: np.random.Generator, n: int) -> list[str]:
    rank = np.arange(1, len(_SURNAMES) + 1)
    p = 1.0 / rank**0.9
    sur = rng.choice(len(_SURNAMES), n, p=p / p.sum())
    g1 = rng.integers(0, len(_GIVEN), n)
    g2 = rng.integers(0, len(_GIVEN), n)
    two = rng.random(n) < 0.7
    return [
        _SURNAMES[s] + _GIVEN[a] + (_GIVEN[b] if t else "")
        for s, a, b, t in zip(
            sur.tolist(), g1.tolist(), g2.tolist(), two.tolist(), strict=True
        )
    ]


# --------------------------------------------------------------------------- households


@dataclass
class _Chunk:
    """Households of one village/community, in metric coordinates."""

    code: str
    x: np.ndarray
    y: np.ndarray
    people: np.ndarray
    tail: list[str]  # address after township (and village) name: "3组12号"
    building: list[int | None]  # building number inside the area, or None
    unit: list[str | None]
    apartment: np.ndarray  # bool, address has 幢/单元
    place: str = ""  # township (+ village) part of the address


def _uniform_in(
    rng: np.random.Generator, geom: BaseGeometry, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` uniform random points strictly inside (prepared) ``geom``."""
    minx, miny, maxx, maxy = geom.bounds
    ratio = max(geom.area / max((maxx - minx) * (maxy - miny), 1e-9), 1e-3)
    xs, ys, got = [], [], 0
    for _ in range(200):
        if got >= k:
            break
        m = int((k - got) / ratio * 1.3) + 16
        x = rng.uniform(minx, maxx, m)
        y = rng.uniform(miny, maxy, m)
        ok = shapely.contains_xy(geom, x, y)
        xs.append(x[ok])
        ys.append(y[ok])
        got += int(ok.sum())
    if got < k:  # pragma: no cover
        raise RuntimeError("could not sample points in area")
    return np.concatenate(xs)[:k], np.concatenate(ys)[:k]


def _scatter(
    rng: np.random.Generator,
    geom: BaseGeometry,
    cx: np.ndarray,
    cy: np.ndarray,
    sigma: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points around per-point centres, all inside ``geom``."""
    n = len(cx)
    x = cx + rng.normal(0.0, 1.0, n) * sigma
    y = cy + rng.normal(0.0, 1.0, n) * sigma
    bad = np.flatnonzero(~shapely.contains_xy(geom, x, y))
    for _ in range(8):
        if bad.size == 0:
            break
        x[bad] = cx[bad] + rng.normal(0.0, 1.0, bad.size) * sigma[bad]
        y[bad] = cy[bad] + rng.normal(0.0, 1.0, bad.size) * sigma[bad]
        bad = bad[~shapely.contains_xy(geom, x[bad], y[bad])]
    if bad.size:
        x[bad], y[bad] = _uniform_in(rng, geom, bad.size)
    return x, y


def _people_counts(rng: np.random.Generator, n: int, probs: np.ndarray) -> np.ndarray:
    return rng.choice(len(probs), n, p=probs).astype(np.int64)


def _rural_households(
    rng: np.random.Generator, region: BaseGeometry, size: int, code: str
) -> _Chunk:
    """Households of a village, clustered in hamlets (村民小组 / 自然村)."""
    k = int(np.clip(round(size / rng.uniform(25.0, 70.0)), 1, 18))
    k = min(k, size)
    hsize = 1 + _distribute(size - k, rng.dirichlet(np.full(k, 2.0)))
    hx, hy = _uniform_in(rng, region, k)
    sig = 20.0 + 5.0 * np.sqrt(hsize)
    rep = np.repeat(np.arange(k), hsize)
    x, y = _scatter(rng, region, hx[rep], hy[rep], sig[rep])
    hamlet_names = _unique_names(rng, k)
    use_name = rng.random(size) < 0.08  # 自然村 name instead of 组
    num = np.arange(size) - np.repeat(np.cumsum(hsize) - hsize, hsize) + 1
    tail = [
        f"{hamlet_names[g]}{m}号" if u else f"{g + 1}组{m}号"
        for g, m, u in zip(rep.tolist(), num.tolist(), use_name.tolist(), strict=True)
    ]
    return _Chunk(
        code=code,
        x=x,
        y=y,
        people=_people_counts(rng, size, _P_RURAL),
        tail=tail,
        building=[None] * size,
        unit=[None] * size,
        apartment=np.zeros(size, dtype=bool),
    )


def _compound_layout(
    rng: np.random.Generator, zone: BaseGeometry, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Building points of a residential compound (小区) of ``k`` buildings."""
    cols = int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / cols))
    gi = np.arange(k) % cols - (cols - 1) / 2
    gj = np.arange(k) // cols - (rows - 1) / 2
    dx, dy = rng.uniform(35.0, 55.0), rng.uniform(28.0, 45.0)
    for _ in range(30):
        cx, cy = _uniform_in(rng, zone, 1)
        th = rng.uniform(0, np.pi)
        u, v = gi * dx, gj * dy
        x = cx[0] + u * np.cos(th) - v * np.sin(th) + rng.normal(0, 2.0, k)
        y = cy[0] + u * np.sin(th) + v * np.cos(th) + rng.normal(0, 2.0, k)
        if shapely.contains_xy(zone, x, y).all():
            return x, y
    return _uniform_in(rng, zone, k)


def _urban_households(
    rng: np.random.Generator,
    zone: BaseGeometry,
    size: int,
    code: str,
    roads: dict[str, int],
    *,
    n_big: int = 0,
) -> _Chunk:
    """Households of a community: apartment compounds plus some low-rise houses."""
    # ``n_big`` very large buildings (> 300 households), each alone in a compound
    big: list[int] = []
    fit = np.flatnonzero(_BIG_CONFIGS.prod(1) <= 0.45 * size / max(n_big, 1))
    if n_big and fit.size:
        big = [int(b) for b in rng.choice(fit, n_big)]
    low0 = round(rng.uniform(0.05, 0.15) * size)
    budget = size - low0 - sum(int(_BIG_CONFIGS[b].prod()) for b in big)
    draw = rng.integers(0, len(_APT_CONFIGS), max(4, budget // 20 + 4))
    cum = np.cumsum(_APT_CONFIGS[draw].prod(1))
    n_b = int(np.searchsorted(cum, budget, side="right"))
    cfg = np.vstack(
        [_BIG_CONFIGS[big].reshape(-1, 3), _APT_CONFIGS[draw[:n_b]].reshape(-1, 3)]
    )
    cap = cfg.prod(1)
    n_low = size - int(cap.sum())
    n_bld = len(cfg)

    # roads of this community (shared with neighbours through ``roads``)
    new = _unique_names(rng, 3)
    mine = [n + _ROAD_SUFFIX[int(rng.integers(len(_ROAD_SUFFIX)))] for n in new]
    if roads:
        old = list(roads)
        mine += [
            old[int(j)] for j in rng.choice(len(old), min(2, len(old)), replace=False)
        ]
    for r in mine:
        roads.setdefault(r, int(rng.integers(1, 9)))

    # compounds: big buildings alone, the rest in groups of 2-12
    groups: list[np.ndarray] = [np.array([b]) for b in range(len(big))]
    b0 = len(big)
    while b0 < n_bld:
        g = int(rng.integers(2, 13))
        groups.append(np.arange(b0, min(b0 + g, n_bld)))
        b0 += g
    bx = np.empty(n_bld)
    by = np.empty(n_bld)
    bno = np.empty(n_bld, dtype=np.int64)
    baddr = [""] * n_bld
    for grp in groups:
        x, y = _compound_layout(rng, zone, len(grp))
        bx[grp], by[grp] = x, y
        road = mine[int(rng.integers(len(mine)))]
        door = roads[road]
        roads[road] = door + int(rng.integers(1, 5))
        bno[grp] = np.arange(1, len(grp) + 1)
        for b in grp:
            baddr[b] = f"{road}{door}号"

    # apartment households: unit / floor / room enumerated inside each building
    rep = np.repeat(np.arange(n_bld), cap)
    k = np.arange(rep.size) - np.repeat(np.cumsum(cap) - cap, cap)
    per_unit = (cfg[:, 1] * cfg[:, 2])[rep]
    unit_no = k // per_unit + 1
    floor = (k % per_unit) // cfg[rep, 2] + 1
    room = k % cfg[rep, 2] + 1
    unit = [
        f"{n}幢{u}单元{f}{r:02d}室"
        for n, u, f, r in zip(
            bno[rep].tolist(),
            unit_no.tolist(),
            floor.tolist(),
            room.tolist(),
            strict=True,
        )
    ]
    tail_apt = [baddr[b] + u for b, u in zip(rep.tolist(), unit, strict=True)]

    # low-rise / self-built houses (城中村) in a few clusters, one door number each
    tail_low: list[str] = []
    if n_low > 0:
        kc = min(n_low, int(rng.integers(1, 4)))
        csize = 1 + _distribute(n_low - kc, rng.dirichlet(np.full(kc, 2.0)))
        cx, cy = _uniform_in(rng, zone, kc)
        crep = np.repeat(np.arange(kc), csize)
        lx, ly = _scatter(rng, zone, cx[crep], cy[crep], np.full(n_low, 60.0))
        for c in crep.tolist():
            road = mine[c % len(mine)]
            tail_low.append(f"{road}{roads[road]}号")
            roads[road] += 1
    else:
        lx = ly = np.zeros(0)

    people = np.concatenate(
        [_people_counts(rng, rep.size, _P_URBAN), _people_counts(rng, n_low, _P_URBAN)]
    )
    return _Chunk(
        code=code,
        x=np.concatenate([bx[rep], lx]),
        y=np.concatenate([by[rep], ly]),
        people=people,
        tail=tail_apt + tail_low,
        building=[*(rep + 1).tolist(), *([None] * n_low)],
        unit=[*unit, *([None] * n_low)],
        apartment=np.concatenate(
            [np.ones(rep.size, dtype=bool), np.zeros(n_low, dtype=bool)]
        ),
    )


def _assemble_households(
    rng: np.random.Generator, chunks: list[_Chunk], to_wgs: Transformer
) -> gpd.GeoDataFrame:
    x = np.concatenate([c.x for c in chunks])
    y = np.concatenate([c.y for c in chunks])
    lon, lat = to_wgs.transform(x, y)
    lon = np.round(lon, COORD_DECIMALS)
    lat = np.round(lat, COORD_DECIMALS)
    n = lon.size
    apartment = np.concatenate([c.apartment for c in chunks])
    # nudge accidental coincident points of houses that are not in a building
    solo = ~apartment
    for step in range(1, 6):
        key = pd.DataFrame({"lon": lon[solo], "lat": lat[solo]})
        dup = key.duplicated().to_numpy()
        if not dup.any():
            break
        where = np.flatnonzero(solo)[dup]
        lon[where] = np.round(lon[where] + 3e-7 * step, COORD_DECIMALS)

    ids: list[str] = []
    bids: list[str | None] = []
    codes: list[str] = []
    for c in chunks:
        m = len(c.tail)
        ids.extend(f"H{c.code}-{s:05d}" for s in range(1, m + 1))
        bids.extend(None if b is None else f"B{c.code}-{b:04d}" for b in c.building)
        codes.extend([c.code] * m)

    # address variants seen in real registers
    prefix_opts = [PROVINCE + CITY + COUNTY, CITY + COUNTY, COUNTY, ""]
    pv = rng.choice(4, n, p=[0.88, 0.06, 0.04, 0.02])
    dong = rng.random(n) < 0.10
    no_shi = rng.random(n) < 0.04
    full = rng.random(n) < 0.015
    addr: list[str] = []
    pos = 0
    for c in chunks:
        place = c.place
        for j, t in enumerate(c.tail):
            i = pos + j
            if c.apartment[j]:
                if dong[i]:
                    t = t.replace("幢", "栋")
                if no_shi[i]:
                    t = t[:-1]
            if full[i]:
                t = t.translate(_FULLWIDTH)
            addr.append(prefix_opts[pv[i]] + place + t)
        pos += len(c.tail)

    return gpd.GeoDataFrame(
        {
            "household_id": ids,
            "address": addr,
            "people": np.concatenate([c.people for c in chunks]),
            "building_id": bids,
            "unit": [u for c in chunks for u in c.unit],
            "area_code": codes,
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=WGS84,
    )


# --------------------------------------------------------------------------- people


def _phones(rng: np.random.Generator, p_landline: np.ndarray) -> list[str]:
    n = len(p_landline)
    land = rng.random(n) < p_landline
    local = rng.integers(0, 1_000_000, n)
    pre = rng.integers(0, len(_MOBILE_PREFIX), n)
    sub = rng.integers(0, 100_000_000, n)
    return [
        f"0570-8{lo:06d}" if is_land else f"{_MOBILE_PREFIX[p]}{s:08d}"
        for is_land, lo, p, s in zip(
            land.tolist(), local.tolist(), pre.tolist(), sub.tolist(), strict=True
        )
    ]


def _make_people(
    rng: np.random.Generator,
    *,
    township_codes: list[str],
    area_codes: list[str],
    area_sizes: list[int],
) -> pd.DataFrame:
    roles: list[str] = []
    codes: list[str] = []
    landline: list[float] = []
    by_town: dict[str, list[int]] = {t: [] for t in township_codes}
    for k, code in enumerate(area_codes):
        by_town[code[:9] + "000"].append(k)
    for t in township_codes:
        roles.append("grid_leader")
        codes.append(t)
        landline.append(0.7)
        for k in by_town[t]:
            h = area_sizes[k]
            n_gw = max(1, round(h / 250))
            n_pm = max(1, round(h / rng.uniform(15.0, 25.0))) if h else 0
            roles += ["grid_worker"] * n_gw + ["party_member"] * n_pm
            codes += [area_codes[k]] * (n_gw + n_pm)
            landline += [0.35] * n_gw + [0.05] * n_pm
    n = len(roles)
    phones = _phones(rng, np.array(landline))
    names = _person_names(rng, n)
    # the handlers of 村事 and 政事 (三事分流), drawn after everyone else so the
    # people above keep their ids, names and phones: one village committee
    # member per village/community, one township office per township
    handlers = [*area_codes, *township_codes]
    roles += ["village_committee"] * len(area_codes) + ["township_office"] * len(
        township_codes
    )
    codes += handlers
    phones += _phones(rng, np.full(len(handlers), 0.8))
    names += _person_names(rng, len(handlers))
    total = len(roles)
    width = max(6, len(str(total)))
    return pd.DataFrame(
        {
            "person_id": [f"P{i:0{width}d}" for i in range(1, total + 1)],
            "name": names,
            "role": roles,
            "work_phone": phones,
            "area_code": codes,
        }
    )
