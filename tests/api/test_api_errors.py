"""Every error is an RFC 9457 problem; the OpenAPI document has examples."""

from __future__ import annotations

import api_support as support
import pytest
from api_support import ApiData, assert_problem, auth
from fastapi.testclient import TestClient

from api.app import MAX_BODY_BYTES

# the shared module-scoped fixtures (data committed to the test database)
api_data = support.api_data
client = support.client


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({}, 422, "Give an address"),
        ({"address": "高家镇", "lon": 1, "lat": 2}, 422, "not both"),
        ({"lon": 118.9}, 422, "both lon and lat"),
        ({"lat": 29}, 422, "both lon and lat"),
        ({"lon": 181, "lat": 29}, 422, "lon"),
        ({"lon": 118.9, "lat": 91}, 422, "lat"),
        ({"lon": 118.9, "lat": -90.5}, 422, "lat"),
        ({"lon": "nan", "lat": 29}, 422, "lon"),
        ({"lon": "inf", "lat": 29}, 422, "lon"),
        ({"lon": "east", "lat": 29}, 422, "lon"),
        ({"lon": 118.9, "lat": 29, "crs": "bd09"}, 422, "crs"),
        ({"address": ""}, 422, "address"),
        ({"address": "   "}, 422, "blank"),
        ({"address": "x" * 501}, 422, "address"),
        ({"address": "高家镇", "as_of": "yesterday"}, 422, "as_of"),
        ({"address": "高家镇", "limit": 0}, 422, "limit"),
        ({"address": "高家镇", "limit": 21}, 422, "limit"),
    ],
)
def test_lookup_4xx(
    client: TestClient, params: dict[str, object], status: int, words: str
) -> None:
    body = assert_problem(client.get("/lookup", params=params), status)
    assert words in body["detail"]


def test_unknown_route_and_method(client: TestClient) -> None:
    body = assert_problem(client.get("/no/such/thing"), 404)
    assert "/docs" in body["detail"]
    body = assert_problem(client.delete("/lookup"), 405)
    assert "GET" in body["detail"]


def test_bodies_are_bounded(client: TestClient) -> None:
    big = b'{"items": [' + b" " * (MAX_BODY_BYTES + 10) + b"]}"
    body = assert_problem(
        client.post(
            "/lookup/batch", content=big, headers={"content-type": "application/json"}
        ),
        413,
    )
    assert str(MAX_BODY_BYTES) in body["detail"]

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"items": ['
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536
        yield b"]}"

    r = client.post(
        "/lookup/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(r, 413)
    bad_length = client.post(
        "/lookup/batch",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "abc"},
    )
    assert bad_length.status_code in {400, 422}


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'{"items": "x"}', b'{"items": [1]}', "不是JSON".encode()],
)
def test_malformed_json_is_422(
    client: TestClient, api_data: ApiData, content: bytes
) -> None:
    r = client.post(
        "/lookup/batch",
        content=content,
        headers={"content-type": "application/json", **auth(api_data.viewer)},
    )
    assert_problem(r, 422)


def test_auth_problems(client: TestClient, api_data: ApiData) -> None:
    r = client.get("/jobs/x", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(r, 401)
    r = client.get("/jobs/x", headers={"Authorization": "Bearer"})
    assert_problem(r, 401)
    r = client.get("/jobs/x", headers={"X-API-Key": api_data.viewer + "x"})
    assert_problem(r, 401)
    # a valid token with one character changed is refused (hash compared)
    tampered = api_data.planner[:-1] + ("a" if api_data.planner[-1] != "a" else "b")
    assert_problem(client.get("/jobs/x", headers=auth(tampered)), 401)
    assert_problem(client.get("/jobs/x", headers=auth(api_data.viewer)), 403)
    assert_problem(client.get("/jobs/x", headers=auth(api_data.planner)), 404)


def test_openapi_docs_with_examples(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/lookup",
        "/lookup/batch",
        "/collections/{cid}/items",
        "/tiles/{z}/{x}/{y}.pbf",
        "/plans",
        "/plans/{plan_id}/publish",
        "/jobs/{job_id}",
    ):
        assert path in paths, path
    params = {p["name"]: p for p in paths["/lookup"]["get"]["parameters"]}
    assert "examples" in params["address"] and "examples" in params["lon"]
    batch = paths["/lookup/batch"]["post"]
    assert "413" in batch["responses"]
    assert batch["responses"]["422"]["content"]["application/problem+json"]["example"]
    schemas = spec["components"]["schemas"]
    assert schemas["BatchIn"].get("examples")
    assert schemas["GenerateIn"].get("examples")
    assert {"bearer", "apiKey"} <= set(spec["components"]["securitySchemes"])


def test_one_table_maps_every_gridmap_error_to_http() -> None:
    """Each kind of geo.errors has its status in api.problems.ERROR_STATUS, and no
    route translates GridMap errors by hand."""
    import ast
    import inspect
    from pathlib import Path

    import geo.errors
    from api.problems import ERROR_STATUS, error_status

    kinds = [
        c
        for _, c in inspect.getmembers(geo.errors, inspect.isclass)
        if issubclass(c, geo.errors.GridMapError) and c is not geo.errors.GridMapError
    ]
    assert set(kinds) == set(ERROR_STATUS)
    assert error_status(geo.errors.NotFound("x", what="plan")) == (
        404,
        "/problems/unknown-plan",
    )
    assert error_status(geo.errors.EmptyInput("x"))[0] == 422
    assert error_status(geo.errors.PlanConflictError("x"))[0] == 409
    names = {c.__name__ for c in kinds} | {"LookupError"}
    routes = Path(__file__).resolve().parents[2] / "api" / "routes"
    by_hand = [
        f"{f.name}:{h.lineno}"
        for f in sorted(routes.glob("*.py"))
        for h in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
        if isinstance(h, ast.ExceptHandler)
        and h.type is not None
        and names & {n.id for n in ast.walk(h.type) if isinstance(n, ast.Name)}
    ]
    assert by_hand == []
