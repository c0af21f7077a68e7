"""ORM models of GridMap's tables (the schema itself is built by Alembic migrations)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from geo.vocabulary import (
    AREA_LEVELS,
    EVENT_STATUSES,
    GRID_KINDS,
    PERSON_ROLES,
    PLAN_STATUSES,
    REPORTER_KINDS,
    TIERS,
)

__all__ = [
    "AREA_LEVELS",
    "GRID_KINDS",
    "PERSON_ROLES",
    "PLAN_STATUSES",
    "AdminArea",
    "Assignment",
    "Base",
    "Grid",
    "Household",
    "Person",
    "Plan",
]

# The domain's words (levels, roles, statuses, tiers) live in geo.vocabulary; the
# check constraints below are built from them, and they stay importable here.


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB}


class AdminArea(Base):
    """An admin area: county, township (镇/乡/街道), village (村) or community (社区)."""

    __tablename__ = "admin_areas"
    __table_args__ = (
        CheckConstraint(_in("level", AREA_LEVELS), name="level_known"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint("parent_id IS DISTINCT FROM id", name="not_own_parent"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    parent: Mapped[AdminArea | None] = relationship(remote_side=[id])


class Household(Base):
    """A household: a point with an address, in a building/unit, in an admin area."""

    __tablename__ = "households"
    __table_args__ = (
        CheckConstraint("people >= 0", name="people_nonnegative"),
        CheckConstraint(
            "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90",
            name="geom_lonlat",
        ),
        Index(
            "ix_households_address_norm_trgm",
            "address_norm",
            postgresql_using="gin",
            postgresql_ops={"address_norm": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, unique=True)
    address: Mapped[str | None] = mapped_column(Text)
    address_norm: Mapped[str | None] = mapped_column(Text)
    address_key: Mapped[str | None] = mapped_column(Text, index=True)
    people: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    building_id: Mapped[str | None] = mapped_column(Text, index=True)
    unit: Mapped[str | None] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(server_default=text("1"))
    area_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True), nullable=False
    )
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Person(Base):
    """Someone who covers households: 网格员, 网格长 or 联户党员 (work contacts only)."""

    __tablename__ = "people"
    __table_args__ = (CheckConstraint(_in("role", PERSON_ROLES), name="role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    work_phone: Mapped[str | None] = mapped_column(Text)
    area_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class Plan(Base):
    """A versioned grid plan for one admin area: draft → published → archived."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint(_in("status", PLAN_STATUSES), name="status_known"),
        CheckConstraint(
            "status = 'draft' OR valid_from IS NOT NULL", name="published_has_date"
        ),
        CheckConstraint(
            "(status = 'archived') = (valid_to IS NOT NULL)", name="archived_has_end"
        ),
        CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name="dates_ordered"
        ),
        UniqueConstraint("area_id", "version", name="uq_plans_area_version"),
        Index(
            "uq_plans_one_published_per_area",
            "area_id",
            unique=True,
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'draft'"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("plans.id", ondelete="SET NULL")
    )
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    metrics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    created_by: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    lock_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Grid(Base):
    """One grid (网格) of a plan: comprehensive (全科) or dedicated (专属)."""

    __tablename__ = "grids"
    __table_args__ = (
        CheckConstraint(_in("kind", GRID_KINDS), name="kind_known"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        UniqueConstraint("plan_id", "code", name="uq_grids_plan_code"),
        UniqueConstraint("id", "plan_id", name="uq_grids_id_plan"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(
        String(16), server_default=text("'comprehensive'")
    )
    area_id: Mapped[int] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT")
    )
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL")
    )
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False
    )
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class Assignment(Base):
    """A household's grid in one plan (at most one per plan), and its covering member."""

    __tablename__ = "assignments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["grid_id", "plan_id"],
            ["grids.id", "grids.plan_id"],
            ondelete="CASCADE",
            name="fk_assignments_grid_same_plan",
        ),
        Index("ix_assignments_grid", "grid_id"),
        Index("ix_assignments_household", "household_id"),
    )

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id", ondelete="CASCADE"), primary_key=True
    )
    grid_id: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL")
    )
    on_boundary: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


#: ``worker`` keys handle events (report, sort, settle …) and read them;
#: ``auditor`` keys read the audit only; ``admin`` keys manage keys.
API_ROLES = ("viewer", "planner", "worker", "auditor", "admin")


class ApiKey(Base):
    """An API key: only its public prefix and the SHA-256 of the whole token are kept."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_in("role", API_ROLES), name="role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: an admin area code or a grid code; None: the whole register
    area_code: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: the person (``people.id``) a worker key belongs to
    person_id: Mapped[int | None] = mapped_column(Integer)
    #: when its expiry was written to the audit (once: ``key_expired``)
    expiry_audited_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True)
    )


__all__ += ["API_ROLES", "ApiKey"]


JOB_KINDS = ("generate", "rebalance")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")


class Job(Base):
    """A background job (plan generation or rebalancing) and its progress.

    Kept in the database so that every server process can answer a poll, and a
    job outlives the process that ran it; ``heartbeat_at`` tells a live job from
    one whose process died.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("kind", JOB_KINDS), name="kind_known"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status_known"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'queued'"))
    stage: Mapped[str] = mapped_column(Text, server_default=text("'queued'"))
    progress: Mapped[float] = mapped_column(Float, server_default=text("0"))
    created_by: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("plans.id", ondelete="SET NULL")
    )
    error: Mapped[dict[str, Any] | None] = mapped_column()


__all__ += ["JOB_KINDS", "JOB_STATUSES", "Job"]


# -- events (三事分流) ------------------------------------------------------------

#: The same words as :mod:`geo.events.flow` (both read :mod:`geo.vocabulary`).
EVENT_TIERS = TIERS


class EventCategory(Base):
    """An item of the event catalogue (class → sub-class → item) and its usual tier."""

    __tablename__ = "event_categories"
    __table_args__ = (
        CheckConstraint(_in("default_tier", EVENT_TIERS), name="tier_known"),
        CheckConstraint("deadline_hours > 0", name="deadline_positive"),
    )

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    subclass_code: Mapped[str] = mapped_column(String(16))
    subclass_name: Mapped[str] = mapped_column(Text)
    class_code: Mapped[str] = mapped_column(String(16))
    class_name: Mapped[str] = mapped_column(Text)
    default_tier: Mapped[str] = mapped_column(String(16))
    deadline_hours: Mapped[int | None] = mapped_column(Integer)


class RoutingRule(Base):
    """Who handles a tier, and how long they have, in an area (NULL: the default).

    An event uses the rule of the nearest area on its area's parent chain, else
    the default. Areas are named by code (rules survive reloading areas).
    """

    __tablename__ = "routing_rules"
    __table_args__ = (
        CheckConstraint(_in("tier", EVENT_TIERS), name="tier_known"),
        CheckConstraint(_in("handler_role", PERSON_ROLES), name="role_known"),
        CheckConstraint("deadline_hours > 0", name="deadline_positive"),
        Index(
            "uq_routing_rules_area_tier",
            text("coalesce(area_code, '')"),
            "tier",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_code: Mapped[str | None] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(16))
    handler_role: Mapped[str] = mapped_column(String(32))
    deadline_hours: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """A matter reported at a point and/or an address, routed and followed to its end.

    ``household_id``, ``grid_id``, ``plan_id`` and the areas are resolved when the
    event is reported and never change (a redraw does not move an old event).
    ``resident_name``/``resident_phone`` are private (keys handling events only).
    """

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(_in("status", EVENT_STATUSES), name="status_known"),
        CheckConstraint(_in("tier", EVENT_TIERS), name="tier_known"),
        CheckConstraint(_in("reporter_kind", REPORTER_KINDS), name="reporter_known"),
        CheckConstraint(
            "reporter_kind = 'resident' OR (resident_name IS NULL AND resident_phone IS NULL)",
            name="resident_only_for_residents",
        ),
        CheckConstraint("address IS NOT NULL OR geom IS NOT NULL", name="located"),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        CheckConstraint("escalation_level >= 0", name="escalation_nonnegative"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(
            "ix_events_status_deadline",
            "deadline",
            postgresql_where=text(
                "status IN ('reported', 'sorted', 'in_hand', 'returned')"
            ),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)
    reported_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    reporter_kind: Mapped[str] = mapped_column(String(16))
    reporter_person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL")
    )
    resident_name: Mapped[str | None] = mapped_column(Text)
    resident_phone: Mapped[str | None] = mapped_column(Text)
    reported_by: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True), nullable=True
    )
    located_by: Mapped[str] = mapped_column(String(16))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL")
    )
    plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("plans.id", ondelete="RESTRICT")
    )
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grids.id", ondelete="RESTRICT"), index=True
    )
    area_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    village_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    township_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_areas.id", ondelete="RESTRICT"), index=True
    )
    category_code: Mapped[str] = mapped_column(
        ForeignKey("event_categories.code", ondelete="RESTRICT")
    )
    tier: Mapped[str] = mapped_column(String(16))
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), index=True
    )
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("routing_rules.id", ondelete="SET NULL")
    )
    deadline: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'reported'"))
    escalated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    escalation_level: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class EventLog(Base):
    """One step of an event (append-only: a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="RESTRICT"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


__all__ += [
    "EVENT_STATUSES",
    "EVENT_TIERS",
    "REPORTER_KINDS",
    "Event",
    "EventCategory",
    "EventLog",
    "RoutingRule",
]


class EventRollup(Base):
    """Events counted by place, status, tier, escalated and settled (kept by triggers).

    The place columns are 0 where the event has none. See migration 0006.
    """

    __tablename__ = "event_rollup"

    grid_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    township_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    escalated: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    settled: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    sat_sum: Mapped[int] = mapped_column(BigInteger)
    sat_n: Mapped[int] = mapped_column(BigInteger)


class EventOpenDeadline(Base):
    """Open events counted by place and the UTC day of their deadline (triggers)."""

    __tablename__ = "event_open_deadlines"

    grid_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    township_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class EventSettleHist(Base):
    """Settled events counted by place and hours-to-settle bucket (triggers)."""

    __tablename__ = "event_settle_hist"

    grid_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    township_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


__all__ += ["EventOpenDeadline", "EventRollup", "EventSettleHist"]


#: What a row of a draft's history records.
EDIT_KINDS = ("draft", "edit", "undo", "redo", "publish")
#: ``done``/``undone``: an edit on the undo stack; ``dropped``: an undone edit a
#: later edit replaced (kept for the record); ``log``: not an edit.
EDIT_STATES = ("done", "undone", "dropped", "log")


class PlanEdit(Base):
    """One step of a draft's history: who did what when, with before/after counts.

    Edits store the touched grids' state before and after (polygons, workers,
    the households' grids and party members), so undo and redo restore exactly
    what the edit changed and cost what it touched.
    """

    __tablename__ = "plan_edits"
    __table_args__ = (
        CheckConstraint(_in("kind", EDIT_KINDS), name="kind_known"),
        CheckConstraint(_in("state", EDIT_STATES), name="state_known"),
        UniqueConstraint("plan_id", "seq", name="uq_plan_edits_plan_seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    op: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(16), server_default=text("'done'"))
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    version: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


# -- the audit -------------------------------------------------------------------

AUDIT_KINDS = (
    "read",
    "refused",
    "capped",
    "key_created",
    "key_revoked",
    "key_expired",
    "publish",
)


class AuditEntry(Base):
    """One line of the append-only audit (a trigger refuses updates and deletes
    but ``gridmap audit prune``'s): who read which households or matters, what
    was refused or capped, keys created, revoked or expired, plans published."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(_in("kind", AUDIT_KINDS), name="kind_known"),
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_key_id", "key_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    kind: Mapped[str] = mapped_column(String(24))
    key_id: Mapped[int | None] = mapped_column(Integer)
    key_prefix: Mapped[str | None] = mapped_column(String(16))
    #: the acting key's area (None: the whole register or no key)
    area_code: Mapped[str | None] = mapped_column(String(40))
    client: Mapped[str | None] = mapped_column(Text)
    endpoint: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    #: external ids of the households revealed
    households: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    #: ids of the matters (events) revealed
    matters: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    #: how many rows a list revealed
    n: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


__all__ += ["AUDIT_KINDS", "AuditEntry"]


class CapReveal(Base):
    """A household revealed to a holder (a key, a client address) within the
    collection caps' window, shared by the server processes (``geo.store.caps``)."""

    __tablename__ = "cap_reveals"
    __table_args__ = (Index("ix_cap_reveals_at", "at"),)

    holder: Mapped[str] = mapped_column(Text, primary_key=True)
    household: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


__all__ += ["CapReveal"]
