"""The lookups' hot path (one prepared statement, the answer built as JSON in
PostGIS) answers exactly as the set-based reference queries of ``geo.store.lookup`` do.

Each case is asked over HTTP twice: once as it is served (the hot path for exact
addresses and points inside a grid) and once with the hot path switched off, so
that the reference path answers; the two bodies must be equal. For the hot cases
the reference path is made to fail, which proves the hot path answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import api_support as support
import numpy as np
import pytest
from api_support import ApiData, auth, county
from fastapi.testclient import TestClient
from sqlalchemy import text

import api.routes.lookup as lookup_route
from geo.address import address_keys
from geo.crs import wgs84_to_gcj02
from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key, revoke_key, split_token
from geo.store.lookup import ADDRESS_ANSWERS_SQL, address_answers, point_answer

api_data = support.api_data
client = support.client


def _both(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    params: dict[str, Any],
    hot: bool | None,
    headers: dict[str, str] | None = None,
) -> tuple[Any, Any]:
    """(served answer, reference answer) as (status, JSON body) pairs; ``hot``
    True: the reference path must not be asked, None: either may answer."""
    if hot:

        def _no_reference(*_a: Any, **_k: Any) -> Any:
            raise AssertionError(f"{params} should not need the reference path")

        monkeypatch.setattr(lookup_route, "_reference_lookup", _no_reference)
    served = client.get("/lookup", params=params, headers=headers)
    monkeypatch.undo()

    async def _no_fast(*_a: Any, **_k: Any) -> None:
        return None

    monkeypatch.setattr(lookup_route, "_fast_lookup", _no_fast)
    reference = client.get("/lookup", params=params, headers=headers)
    monkeypatch.undo()
    return (served.status_code, served.json()), (
        reference.status_code,
        reference.json(),
    )


def test_exact_addresses_match_the_reference(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hh = county().households
    rng = np.random.default_rng(7)
    picks = hh.iloc[rng.choice(len(hh), 40, replace=False)]
    for address in [*picks["address"], "Aeulestrasse 10, 9490 Vaduz"]:
        served, reference = _both(client, monkeypatch, {"address": address}, hot=True)
        assert served[0] == 200, (address, served)
        assert served == reference, address
        assert served[1]["match"] == "exact"
        # the public answer: the grid and its worker, nothing of the household
        assert served[1]["result"]["household"] is None
        assert served[1]["result"]["grid_worker"]["role"] == "grid_worker"
        assert served[1]["result"]["party_member"] is None
        assert served[1]["candidates"] == []


def test_points_match_the_reference(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, api_data: ApiData
) -> None:
    engine = make_engine(api_data.url)
    try:
        with engine.connect() as conn:
            # grid corners lie on the edges shared by neighbouring grids: the
            # smallest grid code must win on both paths
            corners = conn.execute(
                text(
                    "SELECT ST_X(p.geom), ST_Y(p.geom) FROM grids g, "
                    "LATERAL ST_DumpPoints(g.geom) p WHERE g.plan_id = :plan "
                    "ORDER BY g.code, p.path LIMIT 30"
                ),
                {"plan": api_data.plan},
            ).all()
    finally:
        engine.dispose()
    hh = county().households
    inside = [(p.x, p.y) for p in hh.geometry.iloc[::97][:30]]
    for lon, lat in [(float(x), float(y)) for x, y in corners] + inside:
        served, reference = _both(
            client, monkeypatch, {"lon": lon, "lat": lat}, hot=True
        )
        assert served[0] == 200 and served == reference, (lon, lat)
        assert served[1]["match"] == "point"
    # GCJ-02 input is shifted back before the statement runs
    lon, lat = inside[0]
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    params = {"lon": float(g_lon), "lat": float(g_lat), "crs": "gcj02"}
    served, reference = _both(client, monkeypatch, params, hot=True)
    assert served == reference
    assert served[1]["query"]["wgs84"] == pytest.approx([lon, lat], abs=1e-6)


@pytest.fixture
def village_key(api_data: ApiData) -> Iterator[tuple[str, set[str]]]:
    """A viewer key limited to one village, and its households' external ids."""
    engine = make_engine(api_data.url)
    with session_scope(engine) as s:
        code, ids = s.execute(
            text(
                "SELECT a.code, array_agg(h.external_id) FROM households h "
                "JOIN admin_areas a ON a.id = h.area_id GROUP BY a.code "
                "ORDER BY count(*) DESC, a.code LIMIT 1"
            )
        ).one()
        token = create_key(s, "viewer", name="village", area_code=code)
    try:
        yield token, set(ids)
    finally:
        with session_scope(engine) as s:
            revoke_key(s, str(split_token(token)))
        engine.dispose()


def test_keyed_lookups_match_the_reference(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    api_data: ApiData,
    village_key: tuple[str, set[str]],
) -> None:
    """A key's exact addresses and points take the hot path inside its scope
    (the household and its party member in the answer) and answer exactly as
    the reference path's scoped session does, for a county-wide key and a
    village's key, inside the village and outside it."""
    token, inside_ids = village_key
    hh = county().households
    rng = np.random.default_rng(11)
    inside = hh[hh["household_id"].isin(inside_ids)]
    outside = hh[~hh["household_id"].isin(inside_ids)]
    picks = [
        *inside.iloc[rng.choice(len(inside), 15, replace=False)].itertuples(),
        *outside.iloc[rng.choice(len(outside), 15, replace=False)].itertuples(),
    ]
    hot_seen = 0
    for who, headers in (("county", auth(api_data.viewer)), ("village", auth(token))):
        for row in picks:
            sees = who == "county" or row.household_id in inside_ids
            params = {"address": row.address}
            served, reference = _both(client, monkeypatch, params, sees, headers)
            assert served == reference, (who, row.address)
            if sees:
                hot_seen += 1
                assert served[0] == 200 and served[1]["match"] == "exact"
                assert served[1]["result"]["household"]["id"] == row.household_id
            else:  # hidden by the key's scope: never this household
                assert row.household_id not in str(served[1]), (who, row.address)
            point = {"lon": row.geometry.x, "lat": row.geometry.y}
            served, reference = _both(client, monkeypatch, point, None, headers)
            assert served == reference, (who, point)
            assert served[0] == 200 and served[1]["match"] == "point"
    assert hot_seen == 45


@pytest.mark.parametrize(
    "params",
    [
        {"address": "樟潭街道金头路"},  # no key match: trigram candidates
        {"address": "不存在的地方123号"},
        {"lon": 100.0, "lat": 30.0},  # outside every grid: nearest grid
        {"lon": 118.9, "lat": 29.0, "as_of": "2024-06-01"},
    ],
)
def test_the_rest_is_answered_by_the_reference_path(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]
) -> None:
    served, reference = _both(client, monkeypatch, params, hot=False)
    assert served == reference
    assert served[0] in {200, 404}


@pytest.fixture
def twin(api_data: ApiData) -> Iterator[tuple[str, str]]:
    """A second household (committed) with the address of an existing one, unassigned."""
    hh = county().households
    address, point = hh["address"].iloc[0], hh.geometry.iloc[0]
    engine = make_engine(api_data.url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO households (external_id, address, address_norm, "
                "address_key, geom, area_id) SELECT 'twin-1', h.address, "
                "h.address_norm, h.address_key, h.geom, h.area_id FROM households h "
                "WHERE h.external_id = :hid"
            ),
            {"hid": hh["household_id"].iloc[0]},
        )
    try:
        yield address, f"{point.x},{point.y}"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM households WHERE external_id = 'twin-1'"))
        engine.dispose()


def test_two_households_at_one_address_are_ambiguous_on_both_paths(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    twin: tuple[str, str],
    api_data: ApiData,
) -> None:
    address, _ = twin
    served, reference = _both(client, monkeypatch, {"address": address}, hot=True)
    assert served == reference
    status, body = served
    # the public answer says so, listing no household
    assert status == 422 and "more than one household" in body["detail"]
    assert "twin-1" not in str(body)
    # a key holder gets the ranked candidates (the reference path)
    r = client.get(
        "/lookup", params={"address": address}, headers=auth(api_data.viewer)
    )
    body = r.json()
    assert r.status_code == 200 and body["match"] == "ambiguous"
    assert body["result"] is None
    by = {c["household"]["id"]: c for c in body["candidates"]}
    assert "twin-1" in by and len(by) == 2
    # the twin is in no plan's assignments: its grid is the one containing it
    assert by["twin-1"]["located_by"] == "location"
    assert by["twin-1"]["party_member"] is None
    others = [c for hid, c in by.items() if hid != "twin-1"]
    assert others[0]["located_by"] == "assignment"
    assert by["twin-1"]["grid"] == others[0]["grid"]


def test_statement_helpers_on_a_plain_connection(api_data: ApiData) -> None:
    """The helpers notebooks and the benchmark use: one psycopg connection."""
    import psycopg

    engine = make_engine(api_data.url)
    libpq = engine.url.set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    engine.dispose()
    hh = county().households
    p = hh.geometry.iloc[5]
    with psycopg.connect(libpq, autocommit=True) as conn:
        answer = point_answer(conn, p.x, p.y)
        assert answer is not None and '"located_by" : "point"' in answer
        assert point_answer(conn, 100.0, 30.0) is None
        with pytest.raises(ValueError, match="lon first"):
            point_answer(conn, 29.0, 118.9)
        key = address_keys([hh["address"].iloc[5]])[0]
        assert key is not None
        rows = address_answers(conn, key)
        assert len(rows) == 1 and hh["household_id"].iloc[5] in rows[0]
        assert address_answers(conn, "没有这个地址") == []
        # the statement is plain SQL with named parameters, usable from any driver
        assert "%(key)s" in ADDRESS_ANSWERS_SQL
