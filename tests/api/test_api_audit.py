"""The audit and the collection caps (issue 23): every read of personal data,
every refusal and cap recorded; the audit append-only; caps per key and per
client address, with X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import api_support as support
import events_support as ev
import pytest
from api_support import assert_problem, auth
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from geo.store.audit import list_entries, prune
from geo.store.db import make_engine, session_scope
from geo.store.keys import create_key
from geo.store.settings import Settings


@pytest.fixture(scope="module")
def world(db_url: str) -> Iterator[dict[str, Any]]:
    engine = make_engine(db_url)
    try:
        w = ev.load_world(engine)
        with session_scope(engine) as s:
            keys = {
                "auditor": create_key(s, "auditor", name="audit tests"),
                "east_auditor": create_key(s, "auditor", area_code=ev.EAST),
                "east": create_key(s, "viewer", area_code=ev.EAST),
            }
        yield {"world": w, "engine": engine, **keys}
    finally:
        ev.clear_world(engine)
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('gridmap.audit_prune', 'on', true)"))
            conn.execute(text("DELETE FROM audit_log"))
        engine.dispose()


def _app(db_url: str, **settings: Any) -> Any:
    return create_app(Settings(database_url=db_url, escalate_every_s=0, **settings))


def _flushed(client: TestClient) -> None:
    client.app.state.audit.flush()  # type: ignore[attr-defined]


def test_reads_and_refusals_are_recorded(world: dict[str, Any], db_url: str) -> None:
    w = world["world"]
    with TestClient(_app(db_url)) as c:
        r = c.get("/collections/households/items", headers=auth(world["east"]))
        assert r.status_code == 200
        shown = {f["id"] for f in r.json()["features"]}
        r = c.get(
            "/lookup", params={"address": ev.east_address(2)}, headers=auth(w.viewer)
        )
        assert r.status_code == 200
        assert_problem(c.get("/collections/households/items"), 401)
        assert_problem(
            c.get("/collections/households/items", headers=auth("gm_wrong")), 401
        )
        assert_problem(c.get("/audit", headers=auth(w.viewer)), 403)
        _flushed(c)
        body = c.get("/audit", headers=auth(world["auditor"])).json()
    entries = body["entries"]
    reads = [e for e in entries if e["kind"] == "read"]
    features = next(
        e for e in reads if e["endpoint"] == "GET /collections/households/items"
    )
    assert set(features["households"]) == shown and features["n"] == len(shown)
    assert features["area_code"] == ev.EAST and features["key_prefix"]
    lookup = next(e for e in reads if e["endpoint"] == "GET /lookup")
    assert lookup["households"] == ["E2"]
    refused = [e for e in entries if e["kind"] == "refused"]
    assert {e["status"] for e in refused} >= {401, 403}
    assert all(e["client"] for e in entries)


def test_the_audit_filters_and_its_area(world: dict[str, Any], db_url: str) -> None:
    with TestClient(_app(db_url)) as c:
        c.get("/collections/households/items", headers=auth(world["east"]))
        c.get("/collections/households/items", headers=auth(world["world"].viewer))
        _flushed(c)
        mine = c.get(
            "/audit", params={"area": ev.EAST}, headers=auth(world["auditor"])
        ).json()["entries"]
        inside = {ev.EAST, "EV11-001"}  # the village and its grid
        assert mine and all(e["area_code"] in inside for e in mine)
        scoped = c.get("/audit", headers=auth(world["east_auditor"])).json()
        assert scoped["entries"]
        assert all(e["area_code"] in inside for e in scoped["entries"])
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        none = c.get(
            "/audit", params={"since": later}, headers=auth(world["auditor"])
        ).json()
        assert none["entries"] == []
        # an auditor key reads no household
        r = c.get("/collections/households/items", headers=auth(world["auditor"]))
        assert_problem(r, 403)


def test_the_audit_is_append_only(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with session_scope(engine) as s:
        s.execute(
            text(
                "INSERT INTO audit_log (kind, endpoint, at) VALUES "
                "('read', 'test', now() - interval '400 days')"
            )
        )
    for sql in (
        "UPDATE audit_log SET endpoint = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    # pruning by age is the one deletion allowed
    with session_scope(engine) as s:
        assert prune(s, older_than=dt.timedelta(days=180)) >= 1
        assert not [e for e in list_entries(s) if e["endpoint"] == "test"]


def test_collection_caps_per_key_and_client(world: dict[str, Any], db_url: str) -> None:
    w = world["world"]
    with TestClient(
        _app(db_url, cap_households_per_key=3, cap_households_per_client=5)
    ) as c:
        for n in (1, 2, 3, 1):  # a household seen again does not count twice
            r = c.get(
                "/lookup",
                params={"address": ev.east_address(n)},
                headers=auth(w.viewer),
            )
            assert r.status_code == 200, r.text
        r = c.get(
            "/lookup", params={"address": ev.east_address(4)}, headers=auth(w.viewer)
        )
        body = assert_problem(r, 429)
        assert int(r.headers["retry-after"]) > 0 and body["limit"] == 3
        # another key from the same address: its own cap, then the address's
        for n in (4, 5):
            r = c.get(
                "/lookup",
                params={"address": ev.east_address(n)},
                headers=auth(w.planner),
            )
            assert r.status_code == 200, r.text
        r = c.get(
            "/lookup", params={"address": ev.east_address(6)}, headers=auth(w.planner)
        )
        assert assert_problem(r, 429)["holder"].startswith("client ")
        # public lookups reveal no household and are never capped
        r = c.get("/lookup", params={"address": ev.east_address(6)})
        assert r.status_code == 200
        _flushed(c)
        capped = c.get(
            "/audit", params={"kind": "capped"}, headers=auth(world["auditor"])
        ).json()["entries"]
    assert len(capped) >= 2 and all(e["status"] == 429 for e in capped)


def test_forwarded_for_is_believed_from_trusted_proxies_only(
    world: dict[str, Any], db_url: str
) -> None:
    w = world["world"]
    forged = {"X-Forwarded-For": "203.0.113.9", **auth(w.viewer)}
    app = _app(db_url, trusted_proxies=["10.0.0.1"])
    with (
        TestClient(app, client=("10.0.0.1", 1)) as proxy,
        TestClient(app, client=("198.51.100.7", 1)) as direct,
    ):
        proxy.get("/collections/households/items/E1", headers=forged)
        direct.get("/collections/households/items/E2", headers=forged)
        _flushed(proxy)
        entries = proxy.get(
            "/audit", params={"kind": "read"}, headers=auth(world["auditor"])
        ).json()["entries"]
    by = {
        tuple(e["households"] or ()): e["client"]
        for e in entries
        if e["endpoint"].startswith("GET /collections/households/items/")
    }
    assert by[("E1",)] == "203.0.113.9"  # from the proxy: the forwarded address
    assert by[("E2",)] == "198.51.100.7"  # from anyone else: the header ignored


def test_audit_off_records_nothing(world: dict[str, Any], db_url: str) -> None:
    with TestClient(_app(db_url, audit=False)) as c:
        assert c.app.state.audit is None  # type: ignore[attr-defined]
        r = c.get("/collections/households/items", headers=auth(world["east"]))
        assert r.status_code == 200


def test_a_key_stops_at_its_expiry_which_is_recorded_once(
    world: dict[str, Any], db_url: str
) -> None:
    """Expiry takes effect at once (401) and is a ``key_expired`` line of the
    audit written by the server's sweep, once, however many processes sweep
    and however often the key is presented afterwards (each a refusal)."""
    engine = world["engine"]
    with session_scope(engine) as s:
        token = create_key(s, "viewer", area_code=ev.EAST)
    prefix = token.split("_")[1]
    with TestClient(_app(db_url)) as c, TestClient(_app(db_url)) as other:
        r = c.get("/collections/households/items", headers=auth(token))
        assert r.status_code == 200  # not expired yet
        with session_scope(engine) as s:  # its last moment has just passed
            s.execute(
                text(
                    "UPDATE api_keys SET expires_at = now() - interval '1 second' "
                    "WHERE prefix = :p"
                ),
                {"p": prefix},
            )
        for _ in range(2):
            r = c.get("/collections/households/items", headers=auth(token))
            assert_problem(r, 401)
        # both servers sweep (as every process does about once a minute)
        found = [
            *c.app.state.audit.sweep_expired(),
            *other.app.state.audit.sweep_expired(),
        ]  # type: ignore[attr-defined]
        assert found.count(prefix) == 1
        assert prefix not in c.app.state.audit.sweep_expired()  # type: ignore[attr-defined]
        _flushed(c)
    with session_scope(engine) as s:
        lines = list_entries(s, key_prefix=prefix)
    kinds = sorted(e["kind"] for e in lines)
    assert kinds == ["key_expired", "read", "refused", "refused"], kinds
    refused = [e for e in lines if e["kind"] == "refused"]
    assert all(e["detail"] == {"reason": "key expired"} for e in refused)


def test_collection_caps_hold_across_server_processes(
    world: dict[str, Any], db_url: str
) -> None:
    """Two server processes (two apps on one database) share a key's cap: what
    one revealed counts in the other once they have synced (about a second),
    and a household both revealed counts once."""
    engine = world["engine"]
    with session_scope(engine) as s:
        s.execute(text("DELETE FROM cap_reveals"))
        key = auth(create_key(s, "viewer", name="two processes"))
    settings = {"cap_households_per_key": 4, "cap_households_per_client": 100}
    with (
        TestClient(_app(db_url, **settings)) as a,
        TestClient(_app(db_url, **settings)) as b,
    ):

        def look(c: TestClient, n: int) -> Any:
            return c.get("/lookup", params={"address": ev.east_address(n)}, headers=key)

        def sync() -> None:
            for c in (a, b, a):
                c.app.state.cap_sync.sync()  # type: ignore[attr-defined]

        for n in (1, 2, 3):
            assert look(a, n).status_code == 200
        sync()
        assert look(b, 1).status_code == 200  # seen by a: still 3 distinct
        sync()
        assert look(b, 4).status_code == 200  # the 4th
        sync()
        for c, n in ((a, 5), (b, 6)):  # a alone has shown 3: the service, 4
            r = look(c, n)
            body = assert_problem(r, 429)
            assert body["limit"] == 4 and int(r.headers["retry-after"]) >= 1
        assert look(a, 2).status_code == 200  # seen before: not a new one
    with session_scope(engine) as s:
        n = s.execute(
            text("SELECT count(*) FROM cap_reveals WHERE holder LIKE 'key %'")
        ).scalar_one()
    assert n >= 4


def test_every_read_of_personal_data_is_in_the_audit(
    world: dict[str, Any], db_url: str
) -> None:
    """Each endpoint that shows households, residents or matters, read with a
    key, leaves one ``read`` line naming what it showed (ids, or the count of
    a layer); the list of endpoints is checked against the app's routes, so a
    new one cannot be forgotten here."""
    w = world["world"]
    viewer, worker, planner = auth(w.viewer), auth(w.worker), auth(w.planner)
    plan = w.plan_id
    with TestClient(_app(db_url)) as c:
        r = c.post(
            "/events",
            json={
                "category": "010101",
                "description": "审计测试",
                "address": ev.east_address(3),
                "resident": {"name": "东山居民", "phone": "13900001111"},
            },
            headers=worker,
        )
        assert r.status_code == 201, r.text
        matter = r.json()["id"]
        bbox = "119.9,29.9,120.5,30.3"  # both villages
        reads = {
            ("GET", "/lookup"): (
                {"params": {"address": ev.east_address(1)}, "headers": viewer},
                {"households": ["E1"]},
            ),
            ("POST", "/lookup/batch"): (
                {
                    "json": {"items": [{"address": ev.east_address(2)}]},
                    "headers": viewer,
                },
                {"households": ["E2"]},
            ),
            ("GET", "/collections/{cid}/items/{fid}"): (
                {"url": "/collections/households/items/E4", "headers": viewer},
                {"households": ["E4"]},
            ),
            ("GET", "/collections/{cid}/items"): (
                {"url": "/collections/households/items", "headers": viewer},
                {"n": 12},
            ),
            ("GET", "/map/households"): (
                {
                    "params": {"plan": plan, "areas": f"{ev.EAST},{ev.WEST}"},
                    "headers": viewer,
                },
                {"households": sorted(f"{v}{n}" for v in "EW" for n in range(1, 7))},
            ),
            ("GET", "/events"): ({"headers": worker}, {"matters": [matter]}),
            ("GET", "/events/{event_id}"): (
                {"url": f"/events/{matter}", "headers": worker},
                {"matters": [matter], "households": ["E3"]},
            ),
            ("POST", "/events/{event_id}/{action}"): (
                {
                    "url": f"/events/{matter}/sort",
                    "json": {"expected_version": 1, "tier": "grid"},
                    "headers": worker,
                },
                {"matters": [matter], "households": ["E3"]},
            ),
            ("GET", "/map/events"): (
                {"params": {"plan": plan}, "headers": worker},
                {"matters": [matter]},
            ),
            ("GET", "/plans/{plan_id}/buildings"): (
                {"url": f"/plans/{plan}/buildings?bbox={bbox}", "headers": planner},
                {"n": 12},
            ),
            ("GET", "/plans/{plan_id}/staff"): (
                {"url": f"/plans/{plan}/staff", "headers": planner},
                {},
            ),
        }
        noted = {
            (m, r.path)
            for r in support.api_routes(c.app.routes)  # type: ignore[attr-defined]
            for m in r.methods
            if "note_read" in _source(r.endpoint)
        }
        assert noted == set(reads) | {("POST", "/events")}, noted ^ set(reads)
        asked = {}
        for (method, path), (kwargs, _) in reads.items():
            url = kwargs.pop("url", path)
            r = c.request(method, url, **kwargs)
            assert r.status_code == 200, (path, r.text)
            asked[(method, path)] = f"{method} {url.split('?')[0]}"
        _flushed(c)
    with session_scope(world["engine"]) as s:
        lines = list_entries(s, kind="read", limit=200)
    for (method, path), (_kwargs, want) in reads.items():
        mine = [e for e in lines if e["endpoint"] == asked[(method, path)]]
        assert mine, (path, [e["endpoint"] for e in lines])
        line = mine[0]  # the newest
        for field, value in want.items():
            got = line[field]
            assert (sorted(got) if isinstance(value, list) else got) == value, (
                path,
                field,
                line,
            )
        assert line["key_prefix"] and line["status"] == 200


def _source(fn: Any) -> str:
    import inspect

    try:
        return inspect.getsource(fn) if fn is not None else ""
    except (OSError, TypeError):
        return ""


def test_the_viewer_layer_counts_against_the_caps(
    world: dict[str, Any], db_url: str
) -> None:
    """The viewer's household layer comes village by village, and each
    village's households count against the key's cap like any other read."""
    engine = world["engine"]
    with session_scope(engine) as s:
        s.execute(text("DELETE FROM cap_reveals"))
        key = auth(create_key(s, "viewer", name="layer cap"))
    plan = world["world"].plan_id
    with TestClient(_app(db_url, cap_households_per_key=8)) as c:
        index = c.get("/map/households", params={"plan": plan}, headers=key).json()
        sizes = {g["area"]: g["n"] for g in index["groups"]}
        assert sizes == {ev.EAST: 6, ev.WEST: 6}, sizes
        r = c.get(
            "/map/households", params={"plan": plan, "areas": ev.EAST}, headers=key
        )
        assert r.status_code == 200 and r.json()["groups"][0]["n"] == 6
        # the same village again: nothing new; the other would make 12 > 8
        again = c.get(
            "/map/households", params={"plan": plan, "areas": ev.EAST}, headers=key
        )
        assert again.status_code == 200
        r = c.get(
            "/map/households", params={"plan": plan, "areas": ev.WEST}, headers=key
        )
        assert assert_problem(r, 429)["type"] == "/problems/collection-cap"
        _flushed(c)
    with session_scope(engine) as s:
        lines = [
            e
            for e in list_entries(s, limit=50)
            if e["endpoint"] == "GET /map/households" and e["kind"] == "read"
        ]
    assert sorted(lines[0]["households"]) == [f"E{n}" for n in range(1, 7)]
