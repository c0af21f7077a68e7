"""The FastAPI application: ``create_app(settings)``; the engine lives in ``lifespan``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import event

from api.jobs import JobRunner
from api.problems import BodyLimit, install_problem_handlers
from api.routes import features, lookup, plans, tiles, viewer
from geo.db import database_url, make_engine
from geo.settings import Settings

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Largest request body accepted (a 10,000-address batch is about 1 MB).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A statement running longer than this is cancelled (the request gets a 500 problem).
STATEMENT_TIMEOUT_MS = 60_000

_DESCRIPTION = """
Community grid governance (网格化管理): for an address or a point, which grid is it
in and who is responsible (以图定户、以户找人、以人管事).

* **Lookups** are public and return the grid and the *work* contacts of the grid
  worker and covering party member, never residents' data.
* **Households** need a *viewer* API key; anything that writes needs a *planner* key
  (`Authorization: Bearer gm_…` or `X-API-Key: gm_…`; create one with
  `gridmap keys create --role viewer`).
* Errors are RFC 9457 `application/problem+json`.
* Coordinates are WGS 84 lon/lat (RFC 7946); GCJ-02 input is accepted where noted.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. Nothing connects until the app starts (``lifespan``).

    With ``settings.database_url`` unset the embedded PostGIS is started.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or Settings()
        engine = make_engine(
            database_url(s, start=True),
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=False,  # a ping per request costs a round trip; recycle instead
            pool_recycle=1800,
        )

        @event.listens_for(engine, "connect")
        def _timeout(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                # JIT compilation costs 50-500 ms on the batch lookups' plans and
                # never pays off for queries this short
                cur.execute("SET jit = off")
            dbapi_conn.commit()

        app.state.engine = engine
        app.state.jobs = JobRunner(engine)
        try:
            yield
        finally:
            app.state.jobs.shutdown()
            engine.dispose()

    app = FastAPI(
        title="GridMap API",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    for module in (lookup, features, tiles, plans, viewer):
        app.include_router(module.router)
    return app
