"""Migration 0004_rekey_addresses: stored keys of existing databases are recomputed."""

from __future__ import annotations

from sqlalchemy import text

from geo.address import address_keys
from geo.store.db import make_engine, upgrade


def test_stored_keys_lose_their_old_group_less_form(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("rekey")
    upgrade(url, "0003")
    old = {
        "h5": ("浙江省衢州市衢江区横路村5组26号", "衢江区横路村26号"),
        "h4": ("浙江省衢州市衢江区横路村4组26号", "衢江区横路村26号"),
        "road": ("樟潭街道沈家路8号", "樟潭街道沈家路8号"),
        "none": (None, None),
    }
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            for ext, (address, key) in old.items():
                c.execute(
                    text(
                        "INSERT INTO households (external_id, address, address_key, geom) "
                        "VALUES (:e, :a, :k, ST_SetSRID(ST_MakePoint(118.9, 28.9), 4326))"
                    ),
                    {"e": ext, "a": address, "k": key},
                )
        upgrade(url)
        with engine.connect() as c:
            stored = dict(
                c.execute(text("SELECT external_id, address_key FROM households")).all()
            )
    finally:
        engine.dispose()
    assert stored == {
        "h5": "衢江区横路村5组26号",
        "h4": "衢江区横路村4组26号",
        "road": "樟潭街道沈家路8号",
        "none": None,
    }
    assert stored["h5"] == address_keys([old["h5"][0]])[0]
