"""The pure rules of events (geo.events): statuses, transitions, tiers, catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo.errors import IllegalTransition, InputError
from geo.events import (
    ACTIONS,
    OPEN_STATUSES,
    STATUSES,
    TIERS,
    TRANSITIONS,
    allowed_actions,
    check_transition,
    read_catalogue,
)
from geo.store import models


def test_the_database_knows_the_same_statuses_and_tiers() -> None:
    assert models.EVENT_STATUSES == STATUSES
    assert models.EVENT_TIERS == TIERS
    assert {"village_committee", "township_office"} <= set(models.PERSON_ROLES)
    assert "worker" in models.API_ROLES


def test_every_status_but_closed_has_a_way_on_and_returned_comes_back() -> None:
    for status in STATUSES:
        assert bool(allowed_actions(status)) == (status != "closed"), status
    assert check_transition(1, "returned", "sort") == "sorted"
    targets = {to for _, to in TRANSITIONS.values()}
    assert targets == set(STATUSES) - {"reported"}
    assert set(OPEN_STATUSES) < set(STATUSES)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_check_transition_agrees_with_the_table(status: str, action: str) -> None:
    froms, to = TRANSITIONS[action]
    if status in froms:
        assert check_transition(5, status, action) == to
    else:
        with pytest.raises(IllegalTransition, match=f"event 5 is '{status}'"):
            check_transition(5, status, action)


def test_unknown_names_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        check_transition(1, "reported", "fly")
    with pytest.raises(ValueError, match="unknown status"):
        allowed_actions("lost")


def test_a_bad_catalogue_names_rows_and_fields(tmp_path: Path) -> None:
    p = tmp_path / "cat.csv"
    p.write_text(
        "code,name,subclass_code,subclass_name,class_code,class_name,default_tier,deadline_hours\n"
        "1,噪音,01,纠纷,0,矛盾,grid,\n"
        "1,漏水,01,纠纷,0,矛盾,county,-3\n"
        "2,,01,纠纷,0,矛盾,village,\n",
        encoding="gb18030",
    )
    with pytest.raises(InputError) as info:
        read_catalogue(p)
    where = {(x.row, x.field) for x in info.value.problems}
    assert where == {
        (2, "code"),
        (2, "default_tier"),
        (2, "deadline_hours"),
        (3, "name"),
    }
    assert "cat.csv row 2, field 'default_tier': unknown tier 'county'" in str(
        info.value
    )
