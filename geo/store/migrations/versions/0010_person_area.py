"""The area of a person, for issuing keys without reading the register.

``gridmap_person_area(pid)`` answers the code of the admin area a person
belongs to ('' for a person with no area, NULL for none with that id), as the
table's owner: an admin key's transaction (which sees no person under the
row-level security of 0008) can check that the person a new key is issued to
exists and lies inside the admin's area, and learns nothing else.

Revision ID: 0010_person_area
Revises: 0009_audit
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010_person_area"
down_revision = "0009_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION gridmap_person_area(pid integer) RETURNS text "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public "
        "AS $$ SELECT coalesce(a.code, '') FROM people p "
        "LEFT JOIN admin_areas a ON a.id = p.area_id WHERE p.id = pid $$"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS gridmap_person_area(integer)")
