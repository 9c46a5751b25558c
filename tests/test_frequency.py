"""Volt MX's `jobFrequencyInfo` <-> Quartz cron (docs/api.md, "Service jobs")."""

from __future__ import annotations

from datetime import datetime

import pytest

from schedd.cron import load_zone, parse
from schedd.families.service_jobs.frequency import cron_to_frequency, frequency_to_cron
from schedd.errors import ValidationError

UTC = load_zone("UTC")
NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

SHAPES = [
    # Volt MX's own samples
    ({"frequencyType": 1, "minuteValues": [5]}, "0 5 * * * ? *"),
    ({"frequencyType": 1, "minuteValues": [0], "hourValues": [3]}, "0 0 */3 * * ? *"),
    ({"frequencyType": 1, "minuteValues": [0, 30]}, "0 0,30 * * * ? *"),
    ({"frequencyType": 2, "hourValues": [4], "minuteValues": [0]}, "0 0 4 * * ? *"),
    ({"frequencyType": 2, "hourValues": [8, 20], "minuteValues": [15, 45]}, "0 15,45 8,20 * * ? *"),
    ({"frequencyType": 3, "dayValues": [2, 6], "hourValues": [9], "minuteValues": [30]}, "0 30 9 ? * 2,6 *"),
    ({"frequencyType": 3, "dayValues": [1], "hourValues": [0], "minuteValues": [0]}, "0 0 0 ? * 1 *"),
    ({"frequencyType": 4, "dateValues": [1, 15], "hourValues": [6], "minuteValues": [0]}, "0 0 6 1,15 * ? *"),
    ({"frequencyType": 4, "dateValues": ["L"], "hourValues": [23], "minuteValues": [59]}, "0 59 23 L * ? *"),
]


@pytest.mark.parametrize("info, cron", SHAPES, ids=lambda v: v if isinstance(v, str) else None)
def test_frequency_info_derives_the_quartz_cron(info, cron):
    assert frequency_to_cron(info) == cron
    assert parse(cron).dialect == "quartz"


@pytest.mark.parametrize("info, cron", SHAPES, ids=lambda v: v if isinstance(v, str) else None)
def test_cron_of_a_shape_gives_back_its_frequency_info(info, cron):
    assert cron_to_frequency(parse(cron)) == info


def test_volt_mxs_sample_with_every_one_hour_derives_an_hourly_cron():
    info = {"frequencyType": 1, "minuteValues": [0], "hourValues": [1]}
    assert frequency_to_cron(info) == "0 0 * * * ? *"
    assert cron_to_frequency(parse("0 0 * * * ? *")) == {"frequencyType": 1, "minuteValues": [0]}


def test_lists_are_sorted_and_deduplicated():
    info = {"frequencyType": 2, "hourValues": [20, 8, 8], "minuteValues": [45, 15]}
    assert frequency_to_cron(info) == "0 15,45 8,20 * * ? *"


@pytest.mark.parametrize(
    "cron, info",
    [
        ("5 * * * *", {"frequencyType": 1, "minuteValues": [5]}),
        ("0 */6 * * *", {"frequencyType": 1, "minuteValues": [0], "hourValues": [6]}),
        ("0 0 0/6 * * ?", {"frequencyType": 1, "minuteValues": [0], "hourValues": [6]}),
        ("30 9 * * 1-5", {"frequencyType": 3, "dayValues": [2, 3, 4, 5, 6], "hourValues": [9], "minuteValues": [30]}),
        ("0 0 * * 0,7", {"frequencyType": 3, "dayValues": [1], "hourValues": [0], "minuteValues": [0]}),
        ("0 30 9 ? * MON-FRI", {"frequencyType": 3, "dayValues": [2, 3, 4, 5, 6], "hourValues": [9], "minuteValues": [30]}),
        ("0 0 12 L * ?", {"frequencyType": 4, "dateValues": ["L"], "hourValues": [12], "minuteValues": [0]}),
        ("0 0 12 1-3 * ?", {"frequencyType": 4, "dateValues": [1, 2, 3], "hourValues": [12], "minuteValues": [0]}),
    ],
)
def test_equivalent_spellings_have_frequency_info_that_fires_the_same(cron, info):
    assert cron_to_frequency(parse(cron)) == info
    derived = frequency_to_cron(info)
    assert list_fires(derived) == list_fires(cron)


def test_a_single_second_is_left_out_of_the_frequency_info_as_volt_mx_does():
    assert cron_to_frequency(parse("41 5 * * * ? *")) == {"frequencyType": 1, "minuteValues": [5]}
    assert cron_to_frequency(parse("19 0 * * * ? *")) == {"frequencyType": 1, "minuteValues": [0]}
    assert cron_to_frequency(parse("30 0 4 * * ?")) == {"frequencyType": 2, "hourValues": [4], "minuteValues": [0]}


@pytest.mark.parametrize(
    "cron",
    [
        "*/30 0 4 * * ?",  # more than one second
        "0 0 4 * 1 ?",  # a month
        "0 0 4 * * ? 2026",  # a year
        "0 0 4 L-3 * ?",
        "0 0 4 15W * ?",
        "0 0 4 ? * 6L",
        "0 0 4 ? * 2#1",
        "0 4 1 * 1",  # Unix OR rule
        "0 4 */2 * 1",  # Unix: both day fields apply
    ],
)
def test_cron_without_a_shape_has_no_frequency_info(cron):
    assert cron_to_frequency(parse(cron)) is None


@pytest.mark.parametrize(
    "info, field",
    [
        ({"frequencyType": 5, "minuteValues": [0]}, "jobFrequencyInfo.frequencyType"),
        ({"frequencyType": "1", "minuteValues": [0]}, "jobFrequencyInfo.frequencyType"),
        ({"frequencyType": True, "minuteValues": [0]}, "jobFrequencyInfo.frequencyType"),
        ({"minuteValues": [0]}, "jobFrequencyInfo.frequencyType"),
        ({"frequencyType": 1}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": []}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": [60]}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": [-1]}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": [True]}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": ["5"]}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": [5.0]}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": 5}, "jobFrequencyInfo.minuteValues"),
        ({"frequencyType": 1, "minuteValues": [0], "hourValues": [0]}, "jobFrequencyInfo.hourValues"),
        ({"frequencyType": 1, "minuteValues": [0], "hourValues": [24]}, "jobFrequencyInfo.hourValues"),
        ({"frequencyType": 1, "minuteValues": [0], "hourValues": [2, 3]}, "jobFrequencyInfo.hourValues"),
        ({"frequencyType": 2, "minuteValues": [0]}, "jobFrequencyInfo.hourValues"),
        ({"frequencyType": 2, "minuteValues": [0], "hourValues": [24]}, "jobFrequencyInfo.hourValues"),
        ({"frequencyType": 3, "minuteValues": [0], "hourValues": [1]}, "jobFrequencyInfo.dayValues"),
        ({"frequencyType": 3, "minuteValues": [0], "hourValues": [1], "dayValues": [0]}, "jobFrequencyInfo.dayValues"),
        ({"frequencyType": 3, "minuteValues": [0], "hourValues": [1], "dayValues": [8]}, "jobFrequencyInfo.dayValues"),
        ({"frequencyType": 4, "minuteValues": [0], "hourValues": [1]}, "jobFrequencyInfo.dateValues"),
        ({"frequencyType": 4, "minuteValues": [0], "hourValues": [1], "dateValues": [32]}, "jobFrequencyInfo.dateValues"),
        ({"frequencyType": 4, "minuteValues": [0], "hourValues": [1], "dateValues": [0]}, "jobFrequencyInfo.dateValues"),
        ({"frequencyType": 4, "minuteValues": [0], "hourValues": [1], "dateValues": ["X"]}, "jobFrequencyInfo.dateValues"),
        ({"frequencyType": 4, "minuteValues": [0], "hourValues": [1], "dateValues": ["L", 15]}, "jobFrequencyInfo.dateValues"),
        ([1, 2], "jobFrequencyInfo"),
    ],
)
def test_invalid_frequency_info_names_its_field(info, field):
    with pytest.raises(ValidationError) as err:
        frequency_to_cron(info)
    assert err.value.field == field, f"{info!r}: {err.value}"
    assert str(err.value).startswith(field + ": ")


def list_fires(cron: str, count: int = 30) -> list[float]:
    expr = parse(cron)
    out, t = [], NOW
    for _ in range(count):
        t = expr.next_after(t, UTC)
        out.append(t)
    return out
