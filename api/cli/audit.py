"""``gridmap audit``: list the audit's lines, prune those past the retention."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated

import typer

from api.cli._app import _engine, _fail, app, console
from geo.store.db import session_scope
from geo.store.settings import Settings

audit_app = typer.Typer(
    help="The audit: reads of personal data, refusals, caps, keys, publishes.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

_AGE = re.compile(r"^(\d+)([dh])$")


def _age(text: str) -> dt.timedelta:
    m = _AGE.match(text.strip())
    if m is None:
        raise _fail(f"--older-than must be like 180d or 12h, not {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return dt.timedelta(days=n) if unit == "d" else dt.timedelta(hours=n)


@audit_app.command("list")
def audit_list_cmd(
    key: Annotated[str | None, typer.Option(help="a key's prefix")] = None,
    area: Annotated[
        str | None, typer.Option(help="keys of this area code (and inside it)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="from this time (ISO 8601, UTC)")
    ] = None,
    limit: Annotated[int, typer.Option(help="most lines")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object a line")
    ] = False,
) -> None:
    """The newest audit lines (filter by key, area, time)."""
    from geo.store.audit import list_entries

    start = None
    if since is not None:
        try:
            start = dt.datetime.fromisoformat(since)
        except ValueError:
            raise _fail(f"--since must be an ISO 8601 time, not {since!r}") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
    engine = _engine(Settings())
    try:
        with session_scope(engine) as session:
            rows = list_entries(
                session, key_prefix=key, area_code=area, since=start, limit=limit
            )
    finally:
        engine.dispose()
    for r in rows:
        if as_json:
            typer.echo(json.dumps(r, ensure_ascii=False, default=str))
            continue
        what = (
            f"{len(r['households'] or [])} households, {len(r['matters'] or [])} matters"
            if r["kind"] == "read"
            else json.dumps(r["detail"], ensure_ascii=False)
        )
        console.print(
            f"{r['at']:%Y-%m-%d %H:%M:%S}  {r['kind']:11} {r['key_prefix'] or '-':8} "
            f"{r['area_code'] or '-':14} {r['client'] or '-':15} {r['status'] or '':>3} "
            f"{r['endpoint']}  {what}",
            highlight=False,
        )


@audit_app.command("prune")
def audit_prune_cmd(
    older_than: Annotated[
        str | None,
        typer.Option(
            help="delete lines older than this (e.g. 180d, 12h; default: the "
            "retention setting GRIDMAP_AUDIT_RETENTION_DAYS, 180 days)"
        ),
    ] = None,
) -> None:
    """Delete audit lines past the retention (the only deletion the audit allows)."""
    from geo.store.audit import prune

    settings = Settings()
    age = (
        _age(older_than)
        if older_than is not None
        else dt.timedelta(days=settings.audit_retention_days)
    )
    engine = _engine(settings)
    try:
        with session_scope(engine) as session:
            n = prune(session, older_than=age)
    finally:
        engine.dispose()
    console.print(f"{n} audit line(s) older than {age} deleted")
