"""The FastAPI application: ``create_app(settings)``; the engine lives in ``lifespan``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import event

from api.audit import AuditMiddleware, AuditWriter
from api.deps import scoped_plan
from api.docs import install_docs
from api.escalation import Escalator
from api.jobs import JobRunner
from api.limits import (
    AuthThrottle,
    CapSync,
    CollectionCap,
    RequestGuard,
    SecurityHeaders,
    trusted_networks,
)
from api.problems import BodyLimit, install_problem_handlers
from api.report_batches import ReportBatcher
from api.routes import (
    audit,
    edits,
    events,
    features,
    health,
    keys,
    lookup,
    plans,
    tiles,
    viewer,
)
from geo.store.db import database_url, make_engine
from geo.store.lookup import HOT_PATH_SETTINGS
from geo.store.settings import Settings

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Largest request body accepted (a 10,000-address batch is about 1 MB).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A statement running longer than this is cancelled (the request gets a 503 problem).
STATEMENT_TIMEOUT_MS = 60_000
#: Most pooled connections a server process keeps for lookups.
LOOKUP_POOL_SIZE = 4
#: While the database is unreachable a request gives up after about this many
#: seconds (connect timeout, waiting for a pooled connection) and is answered
#: 503 with Retry-After; libpq's connect timeout cannot be shorter than 2 s.
DB_WAIT_S = 2


async def _configure_lookup_connection(conn: AsyncConnection) -> None:
    await conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    for setting in HOT_PATH_SETTINGS:
        await conn.execute(setting)


_DESCRIPTION = """
Community grid governance (网格化管理): for an address or a point, which grid is it
in and who is responsible (以图定户、以户找人、以人管事).

* **Lookups** are public for one exactly matching address or a point: the grid
  and the grid worker's *work* contact, nothing of the household. Key holders also
  get the household, its covering party member and ranked candidates; batches need
  a key.
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
            # per server process: up to 4 processes x (10 + LOOKUP_POOL_SIZE)
            # stay under the embedded server's max_connections = 100
            pool_size=5,
            max_overflow=5,
            # a stale connection (the database restarted) is replaced, not used
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=DB_WAIT_S,
            connect_args={"connect_timeout": DB_WAIT_S},
        )

        @event.listens_for(engine, "connect")
        def _timeout(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                # JIT compilation costs 50-500 ms on the batch lookups' plans and
                # never pays off for queries this short
                cur.execute("SET jit = off")
            dbapi_conn.commit()

        # the lookups' hot path: raw psycopg, autocommit (no BEGIN/COMMIT round
        # trips), statements prepared per connection after their 5th use
        pool = AsyncConnectionPool(
            engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            ),
            min_size=2,
            max_size=LOOKUP_POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": DB_WAIT_S},
            configure=_configure_lookup_connection,
            # no check per checkout (a round trip per lookup): a statement that
            # finds its connection broken purges the pool and retries once
            # (api.dbpool.fetch); wait at most this long for a connection, then 503
            timeout=DB_WAIT_S,
            # background reconnection gives up after this long (backing off 1 s,
            # 2 s...); the next request starts a fresh attempt at once, so the
            # pool is back within about a second of the database
            reconnect_timeout=DB_WAIT_S,
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        app.state.engine = engine
        app.state.viewer_tiles = s.viewer_tiles  # /map's basemap (WGS84 XYZ) or None
        app.state.pool = pool
        app.state.reports = ReportBatcher(pool)
        app.state.jobs = JobRunner(engine, scheduler=s.dask_scheduler)
        app.state.escalator = Escalator(engine, s.escalate_every_s)
        app.state.escalator.start()
        # the audit: queued per request, written about once a second and at exit
        app.state.audit = AuditWriter(engine) if s.audit else None
        if app.state.audit is not None:
            app.state.audit.start()
        app.state.trusted_proxies = trusted_networks(s.trusted_proxies)
        app.state.caps = (
            CollectionCap(s.cap_households_per_key, s.cap_window_s),
            CollectionCap(s.cap_households_per_client, s.cap_window_s),
        )
        # the caps hold for the service: counts shared through the database
        app.state.cap_sync = CapSync(app.state.caps, engine)
        app.state.cap_sync.start()
        try:
            yield
        finally:
            app.state.cap_sync.stop()
            if app.state.audit is not None:
                app.state.audit.stop()
            app.state.escalator.stop()
            app.state.jobs.shutdown()
            await pool.close()
            engine.dispose()

    app = FastAPI(
        title="GridMap API",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        # served from vendored assets by install_docs (no CDN); no ReDoc
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.state.auth_throttle = AuthThrottle()
    # inside BodyLimit: the guard reads bodies only after BodyLimit bounded them
    app.add_middleware(RequestGuard)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders)
    # outermost: sees every response, refusals of the limits included
    app.add_middleware(AuditMiddleware)
    install_docs(app)
    for module in (lookup, features, tiles, events, viewer, audit, keys, health):
        app.include_router(module.router)
    # a key limited to an area acts only on the plans inside it (api.deps)
    for module in (plans, edits):
        app.include_router(module.router, dependencies=[Depends(scoped_plan)])
    return app
