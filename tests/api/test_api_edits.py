"""Redrawing a draft over HTTP: draft, move, stale version, undo/redo, validate, publish, lookup."""

from __future__ import annotations

from typing import Any

import api_support as support
import geopandas as gpd
import pytest
import shapely
from api_support import ApiData, assert_problem, auth, county
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key

# the shared module-scoped fixtures (data committed to the test database)
api_data = support.api_data
client = support.client


@pytest.fixture(scope="module")
def keys(api_data: ApiData) -> dict[str, str]:
    engine = make_engine(api_data.url)
    with session_scope(engine) as s:
        worker = create_key(s, "worker", name="edit tests")
    engine.dispose()
    return {"planner": api_data.planner, "viewer": api_data.viewer, "worker": worker}


def _grids(api_data: ApiData, plan_id: int) -> gpd.GeoDataFrame:
    engine = make_engine(api_data.url)
    with engine.connect() as conn:
        g = gpd.read_postgis(
            text(
                "SELECT g.code, count(x.household_id) AS n, p.external_id AS worker, g.geom "
                "FROM grids g LEFT JOIN assignments x ON x.grid_id = g.id "
                "LEFT JOIN people p ON p.id = g.worker_id WHERE g.plan_id = :p "
                "GROUP BY g.id, p.external_id ORDER BY g.code"
            ),
            conn,
            params={"p": plan_id},
        )
    engine.dispose()
    return g.set_index("code")


def _worker_name(api_data: ApiData, person: str) -> str:
    engine = make_engine(api_data.url)
    with engine.connect() as conn:
        name = conn.execute(
            text("SELECT name FROM people WHERE external_id = :p"), {"p": person}
        ).scalar_one()
    engine.dispose()
    return str(name)


def _movable(
    client: TestClient, api_data: ApiData, plan_id: int, version: int, planner: str
) -> tuple[dict[str, Any], str, str, str]:
    """Move one household from a grid with room to give into a neighbour with room to
    take; the first candidate the rules accept (nearest households first)."""
    grids = _grids(api_data, plan_id)
    engine = make_engine(api_data.url)
    with engine.connect() as conn:
        hh = gpd.read_postgis(
            text(
                "SELECT h.external_id AS hid, h.building_id, g.code, h.geom FROM assignments x "
                "JOIN households h ON h.id = x.household_id JOIN grids g ON g.id = x.grid_id "
                "WHERE x.plan_id = :p"
            ),
            conn,
            params={"p": plan_id},
        )
    engine.dispose()
    for a in grids.index[grids["n"] > 201]:
        r = client.get(f"/plans/{plan_id}/grids/{a}/neighbours", headers=auth(planner))
        assert r.status_code == 200, r.text
        for b in r.json():
            if grids.loc[b, "n"] >= 299:
                continue
            mine = hh[(hh["code"] == a) & hh["building_id"].isna()]
            d = mine.distance(grids.loc[b, "geom"])
            for hid in mine.loc[d.sort_values().index[:5], "hid"]:
                r = client.post(
                    f"/plans/{plan_id}/edits",
                    json={
                        "expected_version": version,
                        "op": "move",
                        "households": [hid],
                        "to_grid": b,
                    },
                    headers=auth(planner),
                )
                if r.status_code == 200:
                    return r.json(), hid, a, b
                assert r.status_code == 422, r.text
    raise AssertionError("no household could move to a neighbouring grid")


def test_redraw_round_trip(
    client: TestClient, api_data: ApiData, keys: dict[str, str]
) -> None:
    planner = keys["planner"]
    r = client.post(f"/plans/{api_data.plan}/draft", headers=auth(planner))
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["parent_id"] == api_data.plan
    before = _grids(api_data, draft["id"])
    published = _grids(api_data, api_data.plan)
    assert before["n"].to_dict() == published["n"].to_dict(), "the copy is complete"
    assert before["worker"].to_dict() == published["worker"].to_dict()

    body, hid, a, b = _movable(client, api_data, draft["id"], draft["version"], planner)
    assert body["version"] == draft["version"] + 1
    got = {g["code"]: g for g in body["grids"]}
    assert got[a]["households"] == before.loc[a, "n"] - 1
    assert got[b]["households"] == before.loc[b, "n"] + 1
    for code in (a, b):
        assert got[code]["in_band"] and got[code]["cause"] is None
        shape = shapely.geometry.shape(got[code]["geometry"])
        assert shape.is_valid and shape.area > 0
    assert got[b]["worker_id"] == before.loc[b, "worker"], "workers stay"
    after = _grids(api_data, draft["id"])
    assert after.loc[b, "n"] == before.loc[b, "n"] + 1
    assert _grids(api_data, api_data.plan)["n"].to_dict() == published["n"].to_dict()

    # a stale version: 409 with the current version, nothing written
    r = client.post(
        f"/plans/{draft['id']}/edits",
        json={
            "expected_version": draft["version"],
            "op": "move",
            "households": [hid],
            "to_grid": a,
        },
        headers=auth(planner),
    )
    p = assert_problem(r, 409)
    assert p["current_version"] == body["version"]
    assert _grids(api_data, draft["id"])["n"].to_dict() == after["n"].to_dict()

    # undo, redo
    r = client.post(
        f"/plans/{draft['id']}/undo",
        json={"expected_version": body["version"]},
        headers=auth(planner),
    )
    assert r.status_code == 200, r.text
    undone = r.json()
    assert _grids(api_data, draft["id"])["n"].to_dict() == before["n"].to_dict()
    assert {g["code"]: g["households"] for g in undone["grids"]}[b] == before.loc[
        b, "n"
    ]
    r = client.post(
        f"/plans/{draft['id']}/redo",
        json={"expected_version": undone["version"]},
        headers=auth(planner),
    )
    assert r.status_code == 200, r.text
    redone = r.json()
    assert _grids(api_data, draft["id"])["n"].to_dict() == after["n"].to_dict()

    # validate: the edit broke nothing the published plan did not break already
    v0 = client.get(f"/plans/{api_data.plan}/validate", headers=auth(planner)).json()
    v = client.get(f"/plans/{draft['id']}/validate", headers=auth(planner)).json()
    assert v["version"] == redone["version"]
    assert sorted(v["problems"]) == sorted(v0["problems"])

    hist = client.get(f"/plans/{draft['id']}/history", headers=auth(planner)).json()
    assert [h["kind"] for h in hist] == ["draft", "edit", "undo", "redo"]
    assert hist[1]["summary"]["before"][b] == before.loc[b, "n"]
    assert hist[1]["summary"]["after"][b] == before.loc[b, "n"] + 1
    assert all(h["actor"].startswith("api key") for h in hist)

    # publish, then the public lookup answers from the new grid with its worker
    r = client.post(f"/plans/{draft['id']}/publish", headers=auth(planner))
    assert r.status_code == 200, r.text
    address = county().households.set_index("household_id").loc[hid, "address"]
    res = client.get("/lookup", params={"address": address}).json()["result"]
    assert res["grid"]["code"] == b and res["grid"]["plan_id"] == draft["id"]
    assert res["grid_worker"]["name"] == _worker_name(api_data, before.loc[b, "worker"])
    # the publish is the last step of the draft's history, with who and the counts
    steps = client.get(f"/plans/{draft['id']}/history", headers=auth(planner)).json()
    last = steps[-1]
    assert last["kind"] == "publish" and last["actor"].startswith("api key")
    assert "households" in last["summary"]["text"]
    r = client.post(
        f"/plans/{draft['id']}/edits",
        json={"expected_version": redone["version"], "op": "lock", "grids": [a]},
        headers=auth(planner),
    )
    assert "only drafts are edited" in assert_problem(r, 422)["detail"]


def test_edits_need_a_planner_key(
    client: TestClient, api_data: ApiData, keys: dict[str, str]
) -> None:
    for who in ("viewer", "worker"):
        r = client.post(f"/plans/{api_data.plan}/draft", headers=auth(keys[who]))
        assert_problem(r, 403)
        r = client.post(
            f"/plans/{api_data.plan}/edits",
            json={"expected_version": 0, "op": "lock", "grids": ["x"]},
            headers=auth(keys[who]),
        )
        assert_problem(r, 403)
    assert_problem(client.post(f"/plans/{api_data.plan}/draft"), 401)


def test_bad_edits_are_422_and_write_nothing(
    client: TestClient, api_data: ApiData, keys: dict[str, str]
) -> None:
    planner = keys["planner"]
    draft = client.post(f"/plans/{api_data.plan}/draft", headers=auth(planner)).json()
    codes = list(_grids(api_data, draft["id"]).index)
    v = draft["version"]
    cases = [
        ({"op": "move", "households": ["H-nope"], "to_grid": codes[0]}, "unknown"),
        ({"op": "move", "buildings": ["B-nope"], "to_grid": codes[0]}, "unknown"),
        ({"op": "move", "households": ["H-nope"], "to_grid": "X9"}, "no grid"),
        ({"op": "move", "to_grid": codes[0]}, "households or buildings"),
        ({"op": "merge", "grids": [codes[0]]}, "two or more"),
        ({"op": "split", "grid": "X9"}, "no grid"),
        (
            {"op": "assign_worker", "grid": codes[0], "person_id": "nobody"},
            "no grid worker",
        ),
        ({"op": "unlock", "grids": ["X9"]}, "unknown"),
        ({"op": "teleport"}, "op"),
        ({"op": "split", "grid": codes[0], "line": [(500, 1), (2, 2)]}, "lon/lat"),
    ]
    for body, words in cases:
        r = client.post(
            f"/plans/{draft['id']}/edits",
            json={"expected_version": v, **body},
            headers=auth(planner),
        )
        assert words in assert_problem(r, 422)["detail"], (body, r.text)
    assert_problem(
        client.post(
            "/plans/999999/edits",
            json={"expected_version": 0, "op": "lock", "grids": ["x"]},
            headers=auth(planner),
        ),
        404,
    )
    hist = client.get(f"/plans/{draft['id']}/history", headers=auth(planner)).json()
    assert [h["kind"] for h in hist] == ["draft"], "refused edits leave no step"
    r = client.post(
        f"/plans/{draft['id']}/undo",
        json={"expected_version": v},
        headers=auth(planner),
    )
    assert "nothing to undo" in assert_problem(r, 422)["detail"]
