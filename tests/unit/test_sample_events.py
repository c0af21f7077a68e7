"""The seeded year of matters of the sample county (geo.sample.events); no database."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from samples import sample_county

from geo.events import read_catalogue
from geo.events.rows import prepare_event_rows
from geo.sample import SampleCounty, generate_events

END = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(4_000, seed=3)


@pytest.fixture(scope="module")
def events(county: SampleCounty) -> pd.DataFrame:
    return generate_events(county.households, end=END, seed=5)


def test_deterministic_by_seed(county: SampleCounty, events: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        events, generate_events(county.households, end=END, seed=5)
    )
    other = generate_events(county.households, end=END, seed=6)
    assert not other["category"].equals(events["category"])


def test_a_year_at_households(county: SampleCounty, events: pd.DataFrame) -> None:
    assert len(events) == 800  # 0.2 per household and year
    assert events["event_id"].is_unique
    rows = prepare_event_rows(events, source="sample")  # a valid events file
    assert rows["reported_at"].min() >= pd.Timestamp(END) - pd.Timedelta(days=366)
    assert rows["reported_at"].max() < pd.Timestamp(END)
    assert rows["reported_at"].is_monotonic_increasing
    hh = county.households.set_index("address")
    assert events["address"].isin(hh.index).all()
    at = hh.loc[events["address"]]
    assert (rows["lon"].to_numpy() - at.geometry.x.to_numpy()).max() < 1e-6
    assert (rows["lat"].to_numpy() - at.geometry.y.to_numpy()).max() < 1e-6
    # settled ones were settled before the end, closed ones after they settled
    settled = rows.dropna(subset=["settled_at"])
    assert (settled["settled_at"] > settled["reported_at"]).all()
    assert (settled["settled_at"] < pd.Timestamp(END)).all()
    closed = rows.dropna(subset=["closed_at"])
    assert (closed["closed_at"] >= closed["settled_at"]).all()


def test_a_realistic_mix(events: pd.DataFrame) -> None:
    cats = {c.code: c for c in read_catalogue()}
    assert events["category"].isin(cats.keys()).all()
    classes = events["category"].str[:2].value_counts(normalize=True)
    assert set(classes.index) >= {"01", "03", "04", "05"}
    assert classes.idxmax() in {"01", "04"}  # disputes and sanitation lead
    tiers = events["tier"].value_counts(normalize=True)
    assert tiers["grid"] > tiers["village"] > tiers["township"] > 0.03
    # mostly the item's own tier, some sorted one tier up or down
    own = events["tier"] == events["category"].map(lambda c: cats[c].default_tier)
    assert 0.8 < own.mean() < 0.99
    status = events["status"].value_counts()
    done = status.reindex(["settled", "evaluated", "closed"]).fillna(0).sum()
    assert done / len(events) > 0.9
    assert status.get("in_hand", 0) + status.get("sorted", 0) > 0
    sat = pd.to_numeric(events["satisfaction"]).dropna()
    assert len(sat) > 0.7 * len(events)
    assert set(sat.unique()) == {1, 2, 3, 4, 5}
    assert 3.8 < sat.mean() < 4.6  # skewed high
    assert events["resident_name"].notna().mean() == pytest.approx(0.45, abs=0.06)


def test_some_returned_and_some_open_past_deadline() -> None:
    county = sample_county(20_000, seed=0)
    ev = generate_events(county.households, end=END, seed=0)
    rows = prepare_event_rows(ev, source="sample")
    assert 3_000 <= len(ev) <= 6_000
    assert (ev["status"] == "returned").sum() >= 2
    open_ = rows[rows["status"].isin(["reported", "sorted", "in_hand", "returned"])]
    hours = {"grid": 72, "village": 168, "township": 360}
    age_h = (pd.Timestamp(END) - open_["reported_at"]).dt.total_seconds() / 3600
    assert (age_h > open_["tier"].map(hours)).sum() >= 3  # overdue at the end


def test_bad_arguments(county: SampleCounty) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_events(county.households, end=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="per_household"):
        generate_events(county.households, end=END, per_household=0)
    with pytest.raises(ValueError, match="area_code"):
        generate_events(county.households.drop(columns="area_code"), end=END)
    with pytest.raises(ValueError, match="empty"):
        generate_events(county.households.iloc[:0], end=END)
