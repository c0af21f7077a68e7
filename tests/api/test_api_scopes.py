"""Keys limited to an area (issue 23): a key of village A sees and changes
nothing of village B, on every route of the app.

The township of ``events_support`` (villages 东山村 EAST and 西山村 WEST, one
grid each) with matters reported in both; keys of every role limited to EAST,
and one limited to EAST's grid.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import api_support as support
import events_support as ev
import pytest
from api_support import assert_problem, auth
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key
from geo.store.settings import Settings

#: What of village B (WEST) is personal: its households' ids and addresses,
#: its people, its residents and the matters reported there.
WEST_RESIDENT = {"name": "西山居民", "phone": "13900009999"}
WEST_MATTER = "西山村的事项"
EAST_MATTER = "东山村的事项"


@dataclass
class Scoped:
    world: ev.World
    plan_id: int
    east_event: int
    west_event: int
    keys: dict[str, str]  # role (or "grid") -> token limited to EAST
    markers: tuple[str, ...]


@pytest.fixture(scope="module")
def scoped(db_url: str) -> Iterator[Scoped]:
    engine = make_engine(db_url)
    try:
        world = ev.load_world(engine)
        app = create_app(Settings(database_url=db_url, escalate_every_s=0))
        with TestClient(app) as c:
            ids = {}
            for where, address, what in (
                ("east", ev.east_address(1), EAST_MATTER),
                ("west", ev.west_address(1), WEST_MATTER),
            ):
                r = c.post(
                    "/events",
                    json={
                        "category": "010101",
                        "description": what,
                        "address": address,
                        "resident": WEST_RESIDENT
                        if where == "west"
                        else {"name": "东山居民", "phone": "13900001111"},
                    },
                    headers=auth(world.worker),
                )
                assert r.status_code == 201, r.text
                ids[where] = r.json()["id"]
        with session_scope(engine) as s:
            person = s.execute(
                text("SELECT id FROM people WHERE external_id = 'GW-E'")
            ).scalar_one()
            keys = {
                role: create_key(s, role, name=f"east {role}", area_code=ev.EAST)
                for role in ("viewer", "worker", "planner", "auditor", "admin")
            }
            keys["grid"] = create_key(s, "worker", area_code="EV11-001")
            keys["person"] = create_key(
                s, "worker", area_code=ev.EAST, person_id=person
            )
        markers = (
            *[f'"W{n}"' for n in range(1, 7)],  # household ids as JSON strings
            # their addresses (but W1's: the requests below send it)
            *[ev.west_address(n) for n in range(2, 7)],
            WEST_RESIDENT["name"],
            WEST_RESIDENT["phone"],
            WEST_MATTER,
            # WEST's people (its grid worker, 李网格 0570-1002, is public: the
            # public lookup names the grid worker of every address)
            "赵村委",
            "0570-2002",
        )
        yield Scoped(world, world.plan_id, ids["east"], ids["west"], keys, markers)
    finally:
        ev.clear_world(engine)
        engine.dispose()


@pytest.fixture(scope="module")
def client(scoped: Scoped, db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url, escalate_every_s=0))
    with TestClient(app) as c:
        yield c


def _leaks(body: bytes, markers: tuple[str, ...]) -> list[str]:
    return [m for m in markers if m.encode() in body]


_PATH_VALUES = {
    "z": "10",
    "x": "857",
    "y": "418",
    "cid": "households",
    "fid": "W1",
    "code": "EV12-001",
    "job_id": "x",
    "action": "accept",
    "prefix": "0000abcd",  # no such key: the walk revokes nothing
}

_QUERY = {
    "address": ev.west_address(1),
    "area": ev.WEST,
    "grid": "EV12-001",
    "limit": "20",
    "format": "geojson",
}


def _urls(app: Any, s: Scoped) -> Iterator[tuple[str, str]]:
    """Every route of the app as (method, url) with village B's ids filled in
    (each plan id route also with the plan, each event route with B's event)."""
    routes = list(support.api_routes(app.routes))
    documented = {p for p, ops in app.openapi()["paths"].items()}
    assert documented <= {r.path for r in routes}, "every documented route is walked"
    values = {
        **_PATH_VALUES,
        "plan_id": str(s.plan_id),
        "other_id": str(s.plan_id),
        "event_id": str(s.west_event),
    }

    def fill(m: re.Match[str]) -> str:
        return values[m.group(1)]

    for route in routes:
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            path = route.path
            url = re.sub(r"\{(\w+)(?::\w+)?\}", fill, path)
            yield method, url
            if "{cid}" in path:
                for cid in ("grids", "areas"):
                    yield method, url.replace("/households", f"/{cid}", 1)


def test_every_route_with_a_village_key_shows_nothing_of_another_village(
    client: TestClient, scoped: Scoped
) -> None:
    app = client.app
    seen = 0
    for method, url in _urls(app, scoped):
        for who, token in scoped.keys.items():
            params = dict(_QUERY)
            if "plan" not in url:
                params["plan"] = str(scoped.plan_id)
            kwargs: dict[str, Any] = {"headers": auth(token), "params": params}
            if method == "POST":
                kwargs["json"] = {
                    "category": "010101",
                    "address": ev.west_address(1),
                    "description": "x",
                    "expected_version": 1,
                    "items": [{"address": ev.west_address(1)}],
                    "area_code": ev.WEST,
                    "op": "lock",
                    "grids": ["EV12-001"],
                }
            r = client.request(method, url, **kwargs)
            seen += 1
            leaks = _leaks(r.content, scoped.markers)
            assert not leaks, (who, method, url, r.status_code, leaks, r.text[:400])
            assert r.status_code < 500, (who, method, url, r.text[:400])
    assert seen > 100


def test_the_unscoped_key_sees_both_villages(
    client: TestClient, scoped: Scoped
) -> None:
    """The markers are real: an unscoped key (as every key made before areas)
    sees village B's households and matters."""
    r = client.get("/collections/households/items", headers=auth(scoped.world.viewer))
    assert _leaks(r.content, scoped.markers)
    r = client.get(f"/events/{scoped.west_event}", headers=auth(scoped.world.worker))
    assert r.status_code == 200 and WEST_MATTER in r.text


def test_a_village_key_sees_its_own_village(client: TestClient, scoped: Scoped) -> None:
    viewer, worker = scoped.keys["viewer"], scoped.keys["worker"]
    r = client.get("/collections/households/items", headers=auth(viewer))
    ids = {f["id"] for f in r.json()["features"]}
    assert ids == {f"E{n}" for n in range(1, 7)}
    assert r.json()["numberMatched"] == 6
    r = client.get(f"/events/{scoped.east_event}", headers=auth(worker))
    assert r.status_code == 200 and EAST_MATTER in r.text
    r = client.get("/events", headers=auth(worker))
    assert [e["id"] for e in r.json()["items"]] == [scoped.east_event]
    # village B's matter, household and lookups are absent, not forbidden
    assert_problem(
        client.get(f"/events/{scoped.west_event}", headers=auth(worker)), 404
    )
    assert_problem(
        client.get("/collections/households/items/W1", headers=auth(viewer)), 404
    )
    r = client.get(
        "/lookup", params={"address": ev.west_address(1)}, headers=auth(viewer)
    )
    found = [r.json()["result"], *r.json()["candidates"]]
    assert r.status_code == 200 and r.json()["match"] != "exact"
    assert {a["household"]["id"][0] for a in found if a} <= {"E"}  # the near miss
    r = client.get(
        "/lookup", params={"address": ev.east_address(1)}, headers=auth(viewer)
    )
    assert r.status_code == 200 and r.json()["result"]["household"]["id"] == "E1"


def test_a_grid_key_sees_its_grid(client: TestClient, scoped: Scoped) -> None:
    r = client.get("/collections/households/items", headers=auth(scoped.keys["grid"]))
    assert {f["id"] for f in r.json()["features"]} == {f"E{n}" for n in range(1, 7)}


def test_a_village_key_cannot_act_outside(client: TestClient, scoped: Scoped) -> None:
    worker, planner = scoped.keys["worker"], scoped.keys["planner"]
    # a matter in village B cannot be reported, nor one of B's be handled
    r = client.post(
        "/events",
        json={"category": "010101", "address": ev.west_address(3)},
        headers=auth(worker),
    )
    assert r.status_code in {404, 422}, r.text
    r = client.post(
        f"/events/{scoped.west_event}/accept",
        json={"expected_version": 1},
        headers=auth(worker),
    )
    assert_problem(r, 404)
    # the county's plan is not the village's to draft, publish or rebalance
    for url in (
        f"/plans/{scoped.plan_id}/draft",
        f"/plans/{scoped.plan_id}/publish",
    ):
        assert_problem(client.post(url, headers=auth(planner)), 404)
    r = client.post(
        "/plans",
        json={"area_code": ev.WEST},
        headers=auth(planner),
    )
    assert_problem(r, 404)
    # ... and a matter of its own village is its to handle
    r = client.post(
        "/events",
        json={"category": "010101", "address": ev.east_address(4)},
        headers=auth(worker),
    )
    assert r.status_code == 201, r.text


def test_keys_of_unknown_areas_are_refused(db_url: str, scoped: Scoped) -> None:
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s, pytest.raises(ValueError, match="neither"):
            create_key(s, "viewer", area_code="NO-SUCH-AREA")
    finally:
        engine.dispose()


def test_a_persons_key_acts_on_that_persons_matters(
    client: TestClient, scoped: Scoped
) -> None:
    person, worker = auth(scoped.keys["person"]), auth(scoped.keys["worker"])
    mine = client.post(
        "/events",
        json={"category": "010101", "address": ev.east_address(5)},
        headers=person,
    ).json()
    assert mine["assignee"]["id"] == "GW-E"
    url = f"/events/{mine['id']}"
    # acting for someone else is refused, for itself accepted
    r = client.post(
        f"{url}/sort", json={"expected_version": 1, "by": "VC-E"}, headers=person
    )
    assert "cannot act for" in assert_problem(r, 403)["detail"]
    r = client.post(
        f"{url}/sort", json={"expected_version": 1, "tier": "village"}, headers=person
    )
    assert r.status_code == 200, r.text
    # now the village committee's matter: not the person's to act on any more
    assert r.json()["assignee"]["id"] == "VC-E"
    r = client.post(f"{url}/accept", json={"expected_version": 2}, headers=person)
    assert "not assigned to GW-E" in assert_problem(r, 403)["detail"]
    # the village's (unbound) worker key may, for the committee
    r = client.post(
        f"{url}/accept", json={"expected_version": 2, "by": "VC-E"}, headers=worker
    )
    assert r.status_code == 200, r.text
    # and a person's key reports as that person only
    r = client.post(
        "/events",
        json={"category": "010101", "address": ev.east_address(6), "reporter": "VC-E"},
        headers=person,
    )
    assert_problem(r, 403)


def test_html_pages_send_security_headers(client: TestClient) -> None:
    for url in ("/map", "/docs"):
        r = client.get(url)
        assert r.status_code == 200, url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in csp and "default-src 'self'" in csp
        # scripts: this origin, or inline with this response's nonce; no eval
        script_src = csp.split("script-src ")[1].split(";")[0].split()
        assert script_src[0] == "'self'" and len(script_src) == 2, csp
        nonce = script_src[1].removeprefix("'nonce-").removesuffix("'")
        tags = re.findall(r"<script\b[^>]*>", r.text)
        assert tags and all(f'nonce="{nonce}"' in t for t in tags), url
        again = client.get(url).headers["content-security-policy"]
        assert again != csp  # a fresh nonce per response
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "SAMEORIGIN"
    r = client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers


def _person(s: Any, external_id: str) -> int:
    return int(
        s.execute(
            text("SELECT id FROM people WHERE external_id = :e"), {"e": external_id}
        ).scalar_one()
    )


def test_a_village_admin_key_manages_keys_of_its_village_only(
    client: TestClient, scoped: Scoped, db_url: str
) -> None:
    """``/keys``: an admin key of village A issues, lists and revokes keys
    inside A only; the key it issues works at once, its revocation too, and
    both are in the audit with the admin's prefix."""
    admin = auth(scoped.keys["admin"])
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            west_key = create_key(s, "viewer", name="west", area_code=ev.WEST)
            east_person, west_person = _person(s, "GW-E"), _person(s, "GW-W")
        west_prefix = west_key.split("_")[1]
        # other roles and no key: refused
        assert_problem(client.get("/keys"), 401)
        for role in ("viewer", "worker", "planner", "auditor"):
            assert_problem(client.get("/keys", headers=auth(scoped.keys[role])), 403)
        # issue: inside A (a person of A too); never outside, never county-wide
        r = client.post(
            "/keys",
            json={"role": "worker", "area": "EV11-001", "person": east_person},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        issued = r.json()
        assert issued["token"].startswith("gm_") and issued["area"] == "EV11-001"
        assert r.headers["cache-control"] == "no-store"
        for body in ({"role": "viewer", "area": ev.WEST}, {"role": "viewer"}):
            r = client.post("/keys", json=body, headers=admin)
            assert_problem(r, 403)
            assert "cannot issue a key" in r.json()["detail"]
        for person in (west_person, 999_999):  # elsewhere and unknown: the same
            r = client.post(
                "/keys",
                json={"role": "worker", "area": ev.EAST, "person": person},
                headers=admin,
            )
            assert_problem(r, 422)
            assert f"no person with id {person} inside {ev.EAST}" in r.text
        assert_problem(client.post("/keys", json={"role": "root"}, headers=admin), 422)
        # the new key works at once, inside its grid
        new = auth(issued["token"])
        r = client.get(f"/events/{scoped.east_event}", headers=new)
        assert r.status_code == 200, r.text
        # list: A's keys, none of B's and none county-wide
        listed = {
            k["prefix"]: k for k in client.get("/keys", headers=admin).json()["keys"]
        }
        assert issued["prefix"] in listed and west_prefix not in listed
        assert all(k["area"] and k["area"].startswith(ev.EAST) for k in listed.values())
        assert "token" not in str(listed)
        # revoke: B's key is absent (and keeps working); A's is gone at once
        assert_problem(client.delete(f"/keys/{west_prefix}", headers=admin), 404)
        r = client.get("/collections/households/items", headers=auth(west_key))
        assert r.status_code == 200
        r = client.delete(f"/keys/{issued['prefix']}", headers=admin)
        assert r.status_code == 204, r.text
        assert_problem(client.get(f"/events/{scoped.east_event}", headers=new), 401)
        assert_problem(client.delete(f"/keys/{issued['prefix']}", headers=admin), 404)
        # the key's own read is queued by the audit writer: write it out first
        client.app.state.audit.flush()  # type: ignore[attr-defined]
        with session_scope(engine) as s:
            lines = s.execute(
                text(
                    "SELECT kind, endpoint, detail->>'by' FROM audit_log "
                    "WHERE key_prefix = :p ORDER BY id"
                ),
                {"p": issued["prefix"]},
            ).all()
        admin_prefix = scoped.keys["admin"].split("_")[1]
        lifecycle = [(k, e, by) for k, e, by in lines if k.startswith("key_")]
        assert [(k, by) for k, _e, by in lifecycle] == [
            ("key_created", admin_prefix),
            ("key_revoked", admin_prefix),
        ]
        assert lifecycle[0][1] == "POST /keys"
        reads = [e for k, e, _by in lines if k == "read"]
        assert reads == [f"GET /events/{scoped.east_event}"], lines
    finally:
        engine.dispose()


def test_a_village_key_drafts_its_own_part_of_the_plan_covering_it(
    client: TestClient, scoped: Scoped
) -> None:
    """A planner limited to village A drafts A's grids of the township's plan
    (``?area=``), edits that draft, and sees nothing of B in it; B's part, or the
    whole plan, stay out of its reach, and publishing over the township's plan
    needs a key of the township."""
    planner = scoped.keys["planner"]
    r = client.post(
        f"/plans/{scoped.plan_id}/draft",
        params={"area": ev.EAST},
        headers=auth(planner),
    )
    assert r.status_code == 201, r.text
    draft = r.json()["id"]
    assert r.json()["parent_id"] == scoped.plan_id
    r = client.get(f"/plans/{draft}/grids", headers=auth(planner))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["area_code"] == ev.EAST and body["status"] == "draft"
    assert {f["properties"]["code"] for f in body["features"]} == {"EV11-001"}
    assert not _leaks(r.content, scoped.markers)
    r = client.post(
        f"/plans/{draft}/edits",
        json={"op": "lock", "grids": ["EV11-001"], "expected_version": 0},
        headers=auth(planner),
    )
    assert r.status_code == 200, r.text
    # compared with the plan it came from: by that plan's grids in A only
    r = client.get(f"/plans/{scoped.plan_id}/diff/{draft}", headers=auth(planner))
    assert r.status_code == 200, r.text
    summary = r.json()["summary"]
    assert summary["retired"] == [] and summary["created"] == [], summary
    assert summary["households_changed"] == 0 and summary["unchanged"] == 1, summary
    assert not _leaks(r.content, scoped.markers)
    # another village's part, or the whole plan: as if it did not exist
    for params in ({"area": ev.WEST}, {}):
        assert_problem(
            client.post(
                f"/plans/{scoped.plan_id}/draft", params=params, headers=auth(planner)
            ),
            404,
        )
    # publishing it would replace part of the township's plan: not this key's
    r = client.post(f"/plans/{draft}/publish", headers=auth(planner))
    assert_problem(r, 403)
    assert f"plan {scoped.plan_id}" in r.json()["detail"], r.text
    r = client.get(f"/plans/{scoped.plan_id}", headers=auth(scoped.world.planner))
    assert r.json()["status"] == "published"
