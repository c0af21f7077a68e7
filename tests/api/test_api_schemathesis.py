"""Property-based: schemathesis drives every operation of the OpenAPI document.

No response may be a 500, and every error must be ``application/problem+json``.
The data is the shared API test county (real PostGIS); write operations get no key,
so they exercise validation and authentication only.
"""

from __future__ import annotations

import api_support as support
import pytest
from hypothesis import HealthCheck, settings

from api.app import create_app

schemathesis = pytest.importorskip("schemathesis")

# the document only: create_app connects nothing until its lifespan starts
schema = schemathesis.openapi.from_dict(create_app().openapi())

# the shared module-scoped fixtures (data committed to the test database)
api_data = support.api_data
client = support.client


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case, client) -> None:  # type: ignore[no-untyped-def]
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("timeout", None)
    kwargs.pop("allow_redirects", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if "data" in kwargs and not isinstance(kwargs["data"], dict):
        kwargs["content"] = kwargs.pop("data")
    r = client.request(**kwargs)
    assert r.status_code < 500, (case.as_curl_command(), r.text[:500])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), (
            case.as_curl_command(),
            r.headers,
        )
