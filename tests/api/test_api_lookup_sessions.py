"""The lookups' connections run with the hot path's session settings."""

from __future__ import annotations

from typing import Any

import api_support as support
from fastapi.testclient import TestClient

from geo.store.lookup import HOT_PATH_SETTINGS

api_data = support.api_data
client = support.client


async def _show(pool: Any, name: str) -> str:
    async with pool.connection() as conn:
        cur = await conn.execute(f"SHOW {name}")
        row = await cur.fetchone()
        return str(row[0])


def test_lookup_connections_plan_once_and_never_jit(client: TestClient) -> None:
    pool = client.app.state.pool  # type: ignore[attr-defined]
    assert client.portal is not None
    assert client.portal.call(_show, pool, "plan_cache_mode") == "force_generic_plan"
    assert client.portal.call(_show, pool, "jit") == "off"
    assert "SET plan_cache_mode = force_generic_plan" in HOT_PATH_SETTINGS
