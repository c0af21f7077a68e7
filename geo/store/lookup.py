"""Read-side queries: which grid and which people cover an address or a point.

Also the plan listing the HTTP API serves (features and tiles:
:mod:`geo.store.features`). Every function takes a session first and
never commits; addresses are matched on ``households.address_key`` first, then
by trigram similarity (pg_trgm) on ``households.address_norm``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.address import address_keys, normalize_many, parse_address
from geo.vocabulary import AREA_LEVELS

__all__ = [
    "ADDRESS_ANSWERS_SQL",
    "AMBIGUITY_MARGIN",
    "HOT_PATH_SETTINGS",
    "MIN_SCORE",
    "POINT_ANSWER_SQL",
    "PUBLIC_ADDRESS_ANSWERS_SQL",
    "Answer",
    "AreaRef",
    "Contact",
    "GridInfo",
    "LookupResult",
    "NearestGrid",
    "PlanInfo",
    "address_answers",
    "as_of_utc",
    "get_plan",
    "list_plans",
    "lookup_address",
    "lookup_addresses",
    "lookup_point",
    "lookup_points",
    "point_answer",
    "public_result",
]

#: Session settings of the connections that serve the lookups' hot path (the API's
#: pool, and the benches that measure its statements). JIT compilation costs
#: 50-500 ms on the batch lookups' plans and never pays off for queries this
#: short. A prepared statement is planned once for any parameters: left to choose,
#: PostgreSQL re-planned the point lookup on every call in a province of 5 million
#: households with two plans' grids (1 ms of planning for 0.15 ms of work; see
#: bench/results/province-2026-12-01-5m-b2b.md).
HOT_PATH_SETTINGS: tuple[str, ...] = (
    "SET jit = off",
    "SET plan_cache_mode = force_generic_plan",
)

#: Fuzzy candidates scoring below this are dropped (see ``_FUZZY_SQL``).
MIN_SCORE = 0.3
#: A fuzzy best match counts as the answer when it scores at least this …
CONFIDENT_SCORE = 0.6
#: … and leads the runner-up by at least this; otherwise the input is ambiguous.
AMBIGUITY_MARGIN = 0.15
#: pg_trgm ``word_similarity_threshold`` used to find fuzzy candidates.
_WORD_THRESHOLD = 0.5
#: … and, for the addresses that found none, the second try.
_WORD_THRESHOLD_RETRY = 0.3

# Fuzzy candidates: the trigram index finds addresses containing something like
# the search text; the score is the mean of the similarity of the canonical keys
# (the parsed components) and the word similarity of the search text.
_FUZZY_SQL = text(
    "SELECT q.i, c.id, c.score FROM unnest(CAST(:tails AS text[]), "
    "CAST(:keys AS text[])) WITH ORDINALITY AS q(tail, key, i) "
    "CROSS JOIN LATERAL (SELECT h.id, (coalesce(similarity(q.key, h.address_key), 0) "
    "+ word_similarity(q.tail, h.address_norm)) / 2 AS score, "
    "word_similarity(q.tail, h.address_norm) AS ws FROM households h "
    "WHERE q.tail <% h.address_norm "
    "ORDER BY score DESC, ws DESC, h.id LIMIT :lim) c "
    "ORDER BY q.i, c.score DESC, c.ws DESC, c.id"
)

_DEPTH = "array_position(ARRAY[{}]::text[], pa.level::text)".format(
    ", ".join(f"'{lv}'" for lv in AREA_LEVELS)
)


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """A responsible person's *work* contact (never a resident's data)."""

    name: str
    role: str
    work_phone: str | None


@dataclass(frozen=True)
class AreaRef:
    """An admin area by code, name and level."""

    code: str
    name: str
    level: str


@dataclass(frozen=True)
class GridInfo:
    """A grid with its plan, its admin areas (county first) and its grid worker."""

    id: int
    code: str
    name: str | None
    kind: str
    plan_id: int
    plan_version: int
    plan_status: str
    areas: tuple[AreaRef, ...]
    worker: Contact | None


@dataclass(frozen=True)
class Answer:
    """One answer to a lookup: the grid and who covers it.

    ``household_id``/``address`` are set for address lookups only (the
    household's external id and address, nothing else about it); ``member``
    is the household's covering party member. ``located_by`` tells how the
    grid was found: ``assignment`` (the plan's assignment of the household),
    ``location`` (the household is not assigned in that plan; the grid that
    contains its point) or ``point``.
    """

    score: float
    grid: GridInfo | None
    located_by: str
    household_id: str | None = None
    address: str | None = None
    member: Contact | None = None


@dataclass(frozen=True)
class NearestGrid:
    """The grid closest to a point outside every grid, and how far it is."""

    grid: GridInfo
    dist_m: float


@dataclass(frozen=True)
class LookupResult:
    """The outcome of one lookup.

    ``match`` is ``exact`` (the address key matched one household), ``fuzzy``
    (one clear best trigram match), ``ambiguous`` (several candidates, ranked in
    ``answers``; none is chosen), ``point`` (a grid contains the point),
    ``none`` (no household matched) or ``outside`` (the point is in no grid of
    the plans in force; ``nearest`` says which grid is closest).
    """

    match: str
    answers: tuple[Answer, ...] = ()
    nearest: NearestGrid | None = None
    key: str | None = None

    @property
    def best(self) -> Answer | None:
        """The chosen answer, unless the match is ambiguous or there is none."""
        if self.match in {"exact", "fuzzy", "point"} and self.answers:
            return self.answers[0]
        return None


# ---------------------------------------------------------------------------
# Plans in force
# ---------------------------------------------------------------------------


def _in_force(as_of: dt.datetime | None) -> str:
    """A CTE ``in_force(id, depth)``: the published plans, or those valid at ``:as_of``.

    Where plans of nested areas overlap, the deeper area's plan (larger depth)
    wins.
    """
    if as_of is None:
        cond = "p.status = 'published'"
    else:
        cond = (
            "p.status IN ('published', 'archived') AND p.valid_from <= :as_of "
            "AND :as_of < coalesce(p.valid_to, 'infinity'::timestamptz)"
        )
    return (
        f"in_force AS (SELECT p.id, {_DEPTH} AS depth FROM plans p "
        f"JOIN admin_areas pa ON pa.id = p.area_id WHERE {cond})"
    )


def as_of_utc(as_of: dt.date | dt.datetime | None) -> dt.datetime | None:
    """A date means 00:00 UTC that day; a naive datetime is taken as UTC."""
    if as_of is None:
        return None
    if not isinstance(as_of, dt.datetime):
        return dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC)
    return as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------
# Details: grids, people, area chains
# ---------------------------------------------------------------------------


def _area_chains(
    session: Session, area_ids: set[int]
) -> dict[int, tuple[AreaRef, ...]]:
    """Each area with its ancestors up to (and including) the county, top first."""
    if not area_ids:
        return {}
    rows = session.execute(
        text(
            "WITH RECURSIVE up AS ("
            "SELECT a.id AS start, a.code, a.name, a.level, a.parent_id, 0 AS n "
            "FROM admin_areas a WHERE a.id = ANY(:ids) "
            "UNION ALL SELECT up.start, p.code, p.name, p.level, p.parent_id, up.n + 1 "
            "FROM up JOIN LATERAL (SELECT p.code, p.name, p.level, p.parent_id "
            "FROM admin_areas p WHERE p.id = up.parent_id LIMIT 1) p ON true "
            "WHERE up.level NOT IN ('county', 'city', 'province')) "
            "SELECT start, code, name, level FROM up ORDER BY start, n DESC"
        ),
        {"ids": sorted(area_ids)},
    ).all()
    chains: dict[int, list[AreaRef]] = {}
    for r in rows:
        chains.setdefault(r.start, []).append(AreaRef(r.code, r.name, r.level))
    return {k: tuple(v) for k, v in chains.items()}


def _grid_infos(session: Session, grid_ids: set[int]) -> dict[int, GridInfo]:
    if not grid_ids:
        return {}
    rows = session.execute(
        text(
            "SELECT g.id, g.code, g.name, g.kind, g.plan_id, p.version, p.status, "
            "g.area_id, w.name AS w_name, w.role AS w_role, w.work_phone AS w_phone "
            "FROM grids g JOIN plans p ON p.id = g.plan_id "
            "LEFT JOIN people w ON w.id = g.worker_id WHERE g.id = ANY(:ids)"
        ),
        {"ids": sorted(grid_ids)},
    ).all()
    chains = _area_chains(session, {r.area_id for r in rows})
    return {
        r.id: GridInfo(
            id=r.id,
            code=r.code,
            name=r.name,
            kind=r.kind,
            plan_id=r.plan_id,
            plan_version=r.version,
            plan_status=r.status,
            areas=chains.get(r.area_id, ()),
            worker=Contact(r.w_name, r.w_role, r.w_phone) if r.w_name else None,
        )
        for r in rows
    }


def _contacts(session: Session, person_ids: set[int]) -> dict[int, Contact]:
    if not person_ids:
        return {}
    rows = session.execute(
        text("SELECT id, name, role, work_phone FROM people WHERE id = ANY(:ids)"),
        {"ids": sorted(person_ids)},
    ).all()
    return {r.id: Contact(r.name, r.role, r.work_phone) for r in rows}


def _household_answers(
    session: Session, household_ids: set[int], as_of: dt.datetime | None
) -> dict[int, Answer]:
    """Grid, grid worker and covering member of households (score left at 0)."""
    if not household_ids:
        return {}
    rows = session.execute(
        text(
            f"WITH {_in_force(as_of)} "
            "SELECT h.id, h.external_id, h.address, asg.member_id, "
            "coalesce(asg.grid_id, loc.grid_id) AS grid_id, "
            "asg.grid_id IS NOT NULL AS assigned "
            "FROM households h "
            "LEFT JOIN LATERAL (SELECT a.grid_id, a.member_id FROM assignments a "
            "JOIN in_force p ON p.id = a.plan_id WHERE a.household_id = h.id "
            "ORDER BY p.depth DESC, p.id DESC LIMIT 1) asg ON true "
            "LEFT JOIN LATERAL (SELECT g.id AS grid_id FROM grids g "
            "JOIN in_force p ON p.id = g.plan_id "
            "WHERE asg.grid_id IS NULL AND ST_Intersects(g.geom, h.geom) "
            "ORDER BY p.depth DESC, g.code LIMIT 1) loc ON true "
            "WHERE h.id = ANY(:ids)"
        ),
        {"ids": sorted(household_ids), "as_of": as_of},
    ).all()
    grids = _grid_infos(session, {r.grid_id for r in rows if r.grid_id is not None})
    members = _contacts(session, {r.member_id for r in rows if r.member_id is not None})
    return {
        r.id: Answer(
            score=0.0,
            grid=grids.get(r.grid_id) if r.grid_id is not None else None,
            located_by="assignment" if r.assigned else "location",
            household_id=r.external_id,
            address=r.address,
            member=members.get(r.member_id) if r.member_id is not None else None,
        )
        for r in rows
    }


# ---------------------------------------------------------------------------
# Address lookups
# ---------------------------------------------------------------------------


def _search_text(raw: str, norm: str | None) -> str:
    """The normalised address without its province/city/county prefix.

    Most stored addresses share that prefix (or leave it out), so its trigrams
    only blur the similarity and slow the index scan down.
    """
    s = norm or ""
    p = parse_address(raw)
    for part in (p.province, p.city, p.county):
        if part and s.startswith(part):
            s = s[len(part) :]
    return s or (norm or "")


def _decide(
    key: str | None, exact: list[tuple[int, float]], fuzzy: list[tuple[int, float]]
) -> tuple[str, list[tuple[int, float]]]:
    if len(exact) == 1:
        return "exact", exact
    if len(exact) > 1:
        return "ambiguous", exact
    ranked = [c for c in fuzzy if c[1] >= MIN_SCORE]
    if not ranked:
        return "none", []
    best = ranked[0][1]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if best >= CONFIDENT_SCORE and best - runner_up >= AMBIGUITY_MARGIN:
        return "fuzzy", ranked
    return "ambiguous", ranked


def lookup_addresses(
    session: Session,
    addresses: Sequence[str | None],
    *,
    as_of: dt.date | dt.datetime | None = None,
    limit: int = 5,
    fuzzy: bool = True,
) -> list[LookupResult]:
    """Find the household, grid and responsible people of many addresses at once.

    Set-based: one query for the exact keys, one (LATERAL, trigram index) for
    the rest, then one each for the grids, people and admin areas found.

    Parameters
    ----------
    session
        Open session; nothing is written.
    addresses
        Raw addresses (Chinese or Western); blank items give ``match="none"``.
    as_of
        Answer from the plans valid then (``valid_from <= as_of < valid_to``)
        instead of the published ones. A date means 00:00 UTC that day.
    limit
        Most candidates returned per address.
    fuzzy
        Also rank trigram-similar addresses when no key matches exactly (False:
        exact keys only, as the public lookup answers).

    Returns
    -------
    list of LookupResult
        One per input, in order.
    """
    when = as_of_utc(as_of)
    n = len(addresses)
    keys = address_keys(list(addresses))
    norms = normalize_many(list(addresses))
    exact: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    similar: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    with_key = [i for i in range(n) if keys[i]]
    if with_key:
        rows = session.execute(
            text(
                "SELECT q.i, c.id FROM unnest(CAST(:keys AS text[])) "
                "WITH ORDINALITY AS q(key, i) CROSS JOIN LATERAL ("
                "SELECT h.id FROM households h WHERE h.address_key = q.key "
                "ORDER BY h.id LIMIT :lim) c"
            ),
            {"keys": [keys[i] for i in with_key], "lim": limit},
        ).all()
        for r in rows:
            exact[with_key[r.i - 1]].append((r.id, 1.0))
    todo = [i for i in with_key if not exact[i]] if fuzzy else []
    if todo:
        session.execute(
            text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
            {"t": str(_WORD_THRESHOLD)},
        )
        tails = [_search_text(str(addresses[i]), norms[i]) for i in todo]
        params = {"tails": tails, "keys": [keys[i] for i in todo], "lim": limit}
        rows = session.execute(
            _FUZZY_SQL,
            params,
        ).all()
        for r in rows:
            similar[todo[r.i - 1]].append((r.id, float(r.score)))
        # a typo costs a short Chinese address several trigrams: retry the
        # misses with a lower word-similarity threshold
        rest = [j for j, i in enumerate(todo) if not similar[i]]
        if rest:
            session.execute(
                text(
                    "SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"
                ),
                {"t": str(_WORD_THRESHOLD_RETRY)},
            )
            rows = session.execute(
                _FUZZY_SQL,
                {
                    "tails": [tails[j] for j in rest],
                    "keys": [keys[todo[j]] for j in rest],
                    "lim": limit,
                },
            ).all()
            for r in rows:
                similar[todo[rest[r.i - 1]]].append((r.id, float(r.score)))
    decided = [_decide(keys[i], exact[i], similar[i]) for i in range(n)]
    wanted = {hid for _, cands in decided for hid, _ in cands}
    details = _household_answers(session, wanted, when)
    out = []
    for i, (match, cands) in enumerate(decided):
        answers = tuple(
            _with_score(details[hid], score) for hid, score in cands if hid in details
        )
        out.append(LookupResult(match=match, answers=answers, key=keys[i]))
    return out


def _with_score(answer: Answer, score: float) -> Answer:
    return Answer(
        score=round(score, 4),
        grid=answer.grid,
        located_by=answer.located_by,
        household_id=answer.household_id,
        address=answer.address,
        member=answer.member,
    )


def public_result(r: LookupResult) -> LookupResult:
    """What an anonymous caller may be told of ``r``: one exact household's grid
    and grid worker (never the household, its covering member or candidates).

    Anything but one exact household or a point becomes ``none`` (the caller is
    told there is no single match, not which households came close).

    Examples
    --------
    >>> g = GridInfo(1, "G1", None, "comprehensive", 1, 1, "published", (), None)
    >>> a = Answer(1.0, g, "assignment", "H1", "某路1号", Contact("张", "party_member", "1"))
    >>> p = public_result(LookupResult("exact", (a,)))
    >>> p.match, p.best.household_id, p.best.member, p.best.grid.code
    ('exact', None, None, 'G1')
    >>> public_result(LookupResult("ambiguous", (a, a))).answers
    ()
    """
    if r.match in {"point", "outside"}:
        return r
    if r.match != "exact" or len(r.answers) != 1:
        return LookupResult("none", key=r.key)
    a = r.answers[0]
    return LookupResult(
        "exact",
        (Answer(score=a.score, grid=a.grid, located_by=a.located_by),),
        key=r.key,
    )


def lookup_address(
    session: Session,
    address: str,
    *,
    as_of: dt.date | dt.datetime | None = None,
    limit: int = 5,
) -> LookupResult:
    """:func:`lookup_addresses` for one address."""
    return lookup_addresses(session, [address], as_of=as_of, limit=limit)[0]


# ---------------------------------------------------------------------------
# Point lookups
# ---------------------------------------------------------------------------


def _check_lonlat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValueError(f"coordinates must be finite numbers, got ({lon}, {lat})")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(
            f"({lon}, {lat}) is not a lon/lat position: longitude must be within "
            "-180..180 and latitude within -90..90 (lon first)"
        )


def lookup_points(
    session: Session,
    lons: Sequence[float],
    lats: Sequence[float],
    *,
    as_of: dt.date | dt.datetime | None = None,
) -> list[LookupResult]:
    """The grid of the plans in force containing each WGS 84 lon/lat point.

    A point on an edge shared by two grids goes to the smaller grid code (as in
    assignment). A point in no grid gets ``match="outside"`` and the nearest
    grid with its geodesic distance in metres.

    Raises
    ------
    ValueError
        For a non-finite or out-of-range coordinate (nothing is queried).
    """
    if len(lons) != len(lats):
        raise ValueError("lons and lats differ in length")
    for lon, lat in zip(lons, lats, strict=True):
        _check_lonlat(float(lon), float(lat))
    if not lons:
        return []
    when = as_of_utc(as_of)
    rows = session.execute(
        text(
            f"WITH {_in_force(when)}, "
            "pt AS (SELECT q.i, ST_SetSRID(ST_MakePoint(q.lon, q.lat), 4326) AS geom "
            "FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) "
            "WITH ORDINALITY AS q(lon, lat, i)) "
            "SELECT pt.i, hit.id AS grid_id, near.id AS near_id, near.dist_m "
            "FROM pt LEFT JOIN LATERAL (SELECT g.id FROM grids g "
            "JOIN in_force p ON p.id = g.plan_id WHERE ST_Intersects(g.geom, pt.geom) "
            "ORDER BY p.depth DESC, g.code LIMIT 1) hit ON true "
            "LEFT JOIN LATERAL (SELECT c.id, "
            "ST_Distance(c.geom::geography, pt.geom::geography) AS dist_m FROM "
            "(SELECT g.id, g.geom FROM grids g WHERE hit.id IS NULL "
            "AND g.plan_id IN (SELECT id FROM in_force) "
            "ORDER BY g.geom <-> pt.geom LIMIT 3) c ORDER BY dist_m, c.id LIMIT 1) near "
            "ON true ORDER BY pt.i"
        ),
        {
            "lons": [float(v) for v in lons],
            "lats": [float(v) for v in lats],
            "as_of": when,
        },
    ).all()
    ids = {r.grid_id for r in rows if r.grid_id} | {
        r.near_id for r in rows if r.near_id
    }
    grids = _grid_infos(session, ids)
    out = []
    for r in rows:
        if r.grid_id is not None:
            out.append(
                LookupResult(
                    "point",
                    (Answer(score=1.0, grid=grids[r.grid_id], located_by="point"),),
                )
            )
        else:
            near = (
                NearestGrid(grids[r.near_id], round(float(r.dist_m), 1))
                if r.near_id is not None
                else None
            )
            out.append(LookupResult("outside", nearest=near))
    return out


def lookup_point(
    session: Session,
    lon: float,
    lat: float,
    *,
    as_of: dt.date | dt.datetime | None = None,
) -> LookupResult:
    """:func:`lookup_points` for one point."""
    return lookup_points(session, [lon], [lat], as_of=as_of)[0]


# ---------------------------------------------------------------------------
# One-statement lookups (the HTTP API's hot path)
# ---------------------------------------------------------------------------

# The grid ``g`` of plan ``p`` as the API's ``grid`` object, its admin areas
# from the county down (the same chain as :func:`_area_chains`).
# Each step up is one primary-key lookup: a LATERAL with LIMIT 1 is never turned
# into a hash join, which the planner may choose and which then scans every area
# once per level (the cost grows with the province: see bench/province.py).
_GRID_JSON = (
    "json_build_object('id', g.id, 'code', g.code, 'name', g.name, 'kind', g.kind, "
    "'plan_id', g.plan_id, 'plan_version', p.version, 'plan_status', p.status, "
    "'areas', (WITH RECURSIVE up AS (SELECT a.code, a.name, a.level, a.parent_id, "
    "0 AS n FROM admin_areas a WHERE a.id = g.area_id "
    "UNION ALL SELECT b.code, b.name, b.level, b.parent_id, up.n + 1 "
    "FROM up JOIN LATERAL (SELECT b.code, b.name, b.level, b.parent_id "
    "FROM admin_areas b WHERE b.id = up.parent_id LIMIT 1) b ON true "
    "WHERE up.level NOT IN ('county', 'city', 'province')) "
    "SELECT coalesce(json_agg(json_build_object('code', up.code, 'name', up.name, "
    "'level', up.level) ORDER BY up.n DESC), '[]'::json) FROM up))"
)


def _contact_json(alias: str) -> str:
    return (
        f"CASE WHEN {alias}.id IS NULL THEN NULL ELSE json_build_object("
        f"'name', {alias}.name, 'role', {alias}.role, "
        f"'work_phone', {alias}.work_phone) END"
    )


#: The answer for a WGS 84 point ``%(lon)s, %(lat)s`` from the published plans,
#: as JSON text in the shape of the API's ``result`` (no row: no grid contains it).
#: Same rule as :func:`lookup_points`: the deepest area's plan, then the smallest
#: grid code for a point on a shared edge.
POINT_ANSWER_SQL = (
    "SELECT json_build_object('score', 1.0, 'located_by', 'point', "
    f"'household', NULL, 'grid', {_GRID_JSON}, "
    f"'grid_worker', {_contact_json('w')}, 'party_member', NULL)::text "
    "FROM grids g JOIN plans p ON p.id = g.plan_id "
    "JOIN admin_areas pa ON pa.id = p.area_id LEFT JOIN people w ON w.id = g.worker_id "
    "WHERE p.status = 'published' AND ST_Intersects(g.geom, "
    "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)) "
    f"ORDER BY {_DEPTH} DESC, g.code LIMIT 1"
)


def _address_answers_sql(*, public: bool) -> str:
    household = (
        "NULL"
        if public
        else "json_build_object('id', m.external_id, 'address', m.address)"
    )
    member = "NULL" if public else _contact_json("mb")
    return (
        f"WITH {_in_force(None)}, "
        "m AS (SELECT h.id, h.external_id, h.address, h.geom FROM households h "
        "WHERE h.address_key = %(key)s ORDER BY h.id LIMIT %(lim)s) "
        "SELECT json_build_object('score', 1.0, 'located_by', "
        "CASE WHEN asg.grid_id IS NOT NULL THEN 'assignment' ELSE 'location' END, "
        f"'household', {household}, "
        f"'grid', CASE WHEN g.id IS NULL THEN NULL ELSE {_GRID_JSON} END, "
        f"'grid_worker', {_contact_json('w')}, "
        f"'party_member', {member})::text "
        "FROM m LEFT JOIN LATERAL (SELECT a.grid_id, a.member_id FROM assignments a "
        "JOIN in_force f ON f.id = a.plan_id WHERE a.household_id = m.id "
        "ORDER BY f.depth DESC, f.id DESC LIMIT 1) asg ON true "
        "LEFT JOIN LATERAL (SELECT g2.id AS grid_id FROM grids g2 "
        "JOIN in_force f ON f.id = g2.plan_id "
        "WHERE asg.grid_id IS NULL AND ST_Intersects(g2.geom, m.geom) "
        "ORDER BY f.depth DESC, g2.code LIMIT 1) loc ON true "
        "LEFT JOIN grids g ON g.id = coalesce(asg.grid_id, loc.grid_id) "
        "LEFT JOIN plans p ON p.id = g.plan_id "
        "LEFT JOIN people w ON w.id = g.worker_id "
        "LEFT JOIN people mb ON mb.id = asg.member_id ORDER BY m.id"
    )


#: The households whose canonical address key is ``%(key)s`` (at most
#: ``%(lim)s``, by id) with their grid in the published plans, grid worker and
#: covering party member, as JSON text answers in the shape of the API's
#: ``result`` (score 1). Same rules as :func:`lookup_addresses` for exact keys.
ADDRESS_ANSWERS_SQL = _address_answers_sql(public=False)

#: :data:`ADDRESS_ANSWERS_SQL` as the public lookup answers it: no household, no
#: covering party member (ask with ``%(lim)s`` = 2 to tell one match from several).
PUBLIC_ADDRESS_ANSWERS_SQL = _address_answers_sql(public=True)


def point_answer(conn: Any, lon: float, lat: float) -> str | None:
    """:data:`POINT_ANSWER_SQL` on a psycopg connection: one statement, one round trip.

    The fast equivalent of ``lookup_point(...)`` for points inside a grid of
    the published plans; None when no grid contains the point (then
    :func:`lookup_point` finds the nearest one).
    """
    _check_lonlat(float(lon), float(lat))
    row = conn.execute(
        POINT_ANSWER_SQL, {"lon": float(lon), "lat": float(lat)}
    ).fetchone()
    return None if row is None else str(row[0])


def address_answers(conn: Any, key: str, limit: int = 5) -> list[str]:
    """:data:`ADDRESS_ANSWERS_SQL` on a psycopg connection (one round trip).

    One answer: an exact match; several: ambiguous; none: try
    :func:`lookup_address` (trigram similarity).
    """
    rows = conn.execute(ADDRESS_ANSWERS_SQL, {"key": key, "lim": limit}).fetchall()
    return [str(r[0]) for r in rows]


# ---------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInfo:
    """A plan as listed: area, version, status, dates, counts (and details)."""

    id: int
    area_code: str
    area_name: str
    version: int
    name: str | None
    status: str
    parent_id: int | None
    created_at: dt.datetime
    created_by: str | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    grids: int
    households: int
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


_PLAN_SQL = (
    "SELECT p.id, a.code AS area_code, a.name AS area_name, p.version, p.name, "
    "p.status, p.parent_id, p.created_at, p.created_by, p.valid_from, p.valid_to, "
    "(SELECT count(*) FROM grids g WHERE g.plan_id = p.id) AS grids, "
    "(SELECT count(*) FROM assignments x WHERE x.plan_id = p.id) AS households, "
    "{extra} FROM plans p JOIN admin_areas a ON a.id = p.area_id"
)


def list_plans(
    session: Session, *, status: str | None = None, area_code: str | None = None
) -> list[PlanInfo]:
    """All plans (newest first), optionally of one status or area."""
    where, params = [], {}
    if status is not None:
        where.append("p.status = :s")
        params["s"] = status
    if area_code is not None:
        where.append("a.code = :a")
        params["a"] = area_code
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = session.execute(
        text(
            _PLAN_SQL.format(extra="NULL AS params, NULL AS metrics")
            + clause
            + " ORDER BY p.id DESC"
        ),
        params,
    ).mappings()
    return [PlanInfo(**{**r, "params": {}, "metrics": {}}) for r in rows]


def get_plan(session: Session, plan_id: int) -> PlanInfo | None:
    """One plan with its generation parameters and metrics (incl. exceptions)."""
    row = (
        session.execute(
            text(_PLAN_SQL.format(extra="p.params, p.metrics") + " WHERE p.id = :p"),
            {"p": plan_id},
        )
        .mappings()
        .first()
    )
    return PlanInfo(**row) if row is not None else None
