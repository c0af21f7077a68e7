"""Recompute households.address_key: keys now keep the village group (组).

Before, ``…横路村5组26号`` and ``…横路村4组26号`` shared one key (the group was
dropped next to a road and number, and 横路村 read as a road), so looking up
one household answered "ambiguous" with the other (issue 15, item 8). Only
keys that change are written.

Revision ID: 0004_rekey_addresses
Revises: 0003
Create Date: 2026-12-01 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo.address import address_keys

revision = "0004_rekey_addresses"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 50_000


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, address, address_key FROM households "
            "WHERE address IS NOT NULL ORDER BY id"
        )
    ).all()
    keys = address_keys([r.address for r in rows])
    changed = [(r.id, k) for r, k in zip(rows, keys, strict=True) if k != r.address_key]
    for start in range(0, len(changed), _BATCH):
        part = changed[start : start + _BATCH]
        bind.execute(
            sa.text(
                "UPDATE households h SET address_key = u.k "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS text[])) AS u(i, k) "
                "WHERE h.id = u.i"
            ),
            {"ids": [i for i, _ in part], "keys": [k for _, k in part]},
        )


def downgrade() -> None:
    # The older keys lost information; the new ones are kept (lookups still work).
    pass
