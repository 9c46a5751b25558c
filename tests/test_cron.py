"""schedd.cron against Quartz 2.3.2 and cronsim (tests/reference/cron_fixture.json) and the DST rule
of docs/time.md."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest

from schedd.cron import MAX_EXPRESSION_LENGTH, CronError, CronExpr, load_zone, parse
from schedd.errors import ValidationError

FIXTURE = json.loads((Path(__file__).parent / "reference" / "cron_fixture.json").read_text())
UTC = load_zone("UTC")
NY = load_zone("America/New_York")
NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(t: float, tz) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def fires(expr: str, zone, start: float, count: int) -> list[float]:
    """Up to `count` fires after `start`, each asked of next_after (fewer when the expression ends)."""
    cron = parse(expr)
    out: list[float] = []
    t: float | None = start
    for _ in range(count):
        t = cron.next_after(t, zone)
        if t is None:
            break
        out.append(t)
    return out


def case_id(row: dict) -> str:
    return f"{row['expr']} | {row['zone']} | {row['start']}"


def check_row(row: dict) -> None:
    """The fixture's fires come back in order; a complete row with fewer than 5 ends there."""
    want = row["fires"]
    ended = row["complete"] and len(want) < 5
    got = [iso_utc(t) for t in fires(row["expr"], load_zone(row["zone"]), at(row["start"]), len(want) + ended)]
    assert got == want if ended else got[: len(want)] == want, f"{case_id(row)}: want {want}, got {got}"


class TestParsing:
    def test_day_of_week_8_is_out_of_range_naming_the_field(self):
        with pytest.raises(CronError) as err:
            parse("0 0 0 ? * 8")
        assert err.value.field == "day-of-week"
        assert str(err.value) == "day-of-week: 8 is out of range 1-7"

    def test_cron_error_is_a_validation_error_that_can_be_reported_under_an_outer_field(self):
        with pytest.raises(ValidationError) as err:
            parse("0 60 * * * ?")
        outer = err.value.under("time_expression")
        assert outer.field == "time_expression"
        assert str(outer) == "time_expression: minute: 60 is out of range 0-59"

    @pytest.mark.parametrize("row", FIXTURE["quartz_invalid"], ids=lambda r: r["expr"])
    def test_what_quartz_rejects_schedd_rejects_naming_the_field(self, row):
        with pytest.raises(CronError) as err:
            parse(row["expr"])
        assert err.value.field == row["field"], f"{row['expr']!r}: {err.value} (Quartz: {row['quartz_message']})"
        assert str(err.value).startswith(row["field"] + ": ")

    @pytest.mark.parametrize("row", FIXTURE["quartz_divergent"], ids=lambda r: r["expr"])
    def test_what_quartz_accepts_by_accident_schedd_rejects(self, row):
        """Quartz 2.3.2 accepts these (row["why"] says what it does with them); schedd refuses."""
        with pytest.raises(CronError) as err:
            parse(row["expr"])
        assert err.value.field == row["field"], f"{row['expr']!r}: {err.value} ({row['why']})"

    @pytest.mark.parametrize("row", FIXTURE["unix_invalid"], ids=lambda r: r["expr"])
    def test_what_cronsim_rejects_schedd_rejects_naming_the_same_field(self, row):
        with pytest.raises(CronError) as err:
            parse(row["expr"])
        assert err.value.field == row["field"], f"{row['expr']!r}: {err.value} (cronsim: {row['cronsim_message']})"

    @pytest.mark.parametrize(
        "expr, field",
        [
            ("0 0 0 30 FEB ?", "day-of-month"),
            ("0 0 0 31 4 ?", "day-of-month"),
            ("0 0 0 30,31 2 ? 2024-2030", "day-of-month"),
            ("0 0 0 ? 2 2#5,3", "day-of-week"),
            ("0 0 */31 * 0#2", "day-of-month"),
            ("", "expression"),
            ("   ", "expression"),
            ("0 0 0 * * ? 2026 1", "expression"),
            ("0 0 * * * *\n", "day-of-week"),
            ("0\n0 * * *", "expression"),
            ("0 0 * * MÖN", "expression"),
            ("0 0 0 ? * 1,L", "day-of-week"),
            ("0 0 0 L-28W * ?", "day-of-month"),
        ],
    )
    def test_invalid_expression_names_its_field(self, expr, field):
        with pytest.raises(CronError) as err:
            parse(expr)
        assert err.value.field == field, f"{expr!r}: {err.value}"

    def test_an_expression_longer_than_the_cap_is_rejected_before_parsing(self):
        padded = "0 0 * * *" + " " * (MAX_EXPRESSION_LENGTH - 9)
        assert parse(padded).normalized == "0 0 * * *"
        with pytest.raises(CronError) as err:
            parse(padded + " ")
        assert (err.value.field, err.value.reason) == ("expression", "longer than 1024 characters")

    def test_a_non_string_is_rejected(self):
        for value in (None, 5, ["0 0 * * *"]):
            with pytest.raises(CronError) as err:
                parse(value)  # type: ignore[arg-type]
            assert err.value.field == "expression"

    @pytest.mark.parametrize(
        "expr, dialect, normalized",
        [
            ("0 15 10 ? * mon-fri", "quartz", "0 15 10 ? * 2-6 *"),
            ("  0  15\t10 ? jan,Jul *  ", "quartz", "0 15 10 ? 1,7 * *"),
            ("0 15 10 ? * friL 2026", "quartz", "0 15 10 ? * 6L 2026"),
            ("0 0 12 ? * sun#2", "quartz", "0 0 12 ? * 1#2 *"),
            ("05 /15 0 L-03 * ?", "quartz", "5 */15 0 L-3 * ? *"),
            ("0 0 0 lw * ?", "quartz", "0 0 0 LW * ? *"),
            ("0 0 0 ? * L", "quartz", "0 0 0 ? * L *"),
            ("30 8 * jan-mar sat,sun", "unix", "30 8 * 1-3 6,0"),
            ("0 0 * * 7", "unix", "0 0 * * 7"),
            ("0 0 l * fri#3", "unix", "0 0 L * 5#3"),
        ],
    )
    def test_normalized_form_uses_numbers_upper_case_single_spaces(self, expr, dialect, normalized):
        cron = parse(expr)
        assert (cron.expr, cron.dialect, cron.normalized) == (expr.strip(), dialect, normalized)
        again = parse(normalized)
        assert again.normalized == normalized, "normalizing twice changes nothing"
        assert fires(expr, NY, NOW, 20) == fires(normalized, NY, NOW, 20)

    def test_normalized_form_fires_like_the_original_across_the_fixture(self):
        for row in FIXTURE["quartz_random"][:400] + FIXTURE["unix"][:200]:
            original = parse(row["expr"])
            again = parse(original.normalized)
            assert again.normalized == original.normalized, case_id(row)
            start = at(row["start"])
            assert fires(row["expr"], UTC, start, 5) == fires(original.normalized, UTC, start, 5), case_id(row)

    def test_parsed_expressions_are_shared_hashable_and_immutable(self):
        a, b = parse("0 0 4 ? * * *"), parse("0 0 4 ? * * *")
        assert a is b
        assert {a: 1}[b] == 1
        assert isinstance(a, CronExpr)
        with pytest.raises((dataclasses.FrozenInstanceError, AttributeError)):
            a.expr = "x"  # type: ignore[misc]


class TestQuartzSpecials:
    """Hand-picked expressions covering every special, in several zones, answered by Quartz 2.3.2.

    In zones with DST the fixture keeps only Quartz's fires before the zone's next offset
    change (row["complete"] is false then): the DST rule (docs/time.md) does not take Quartz's word across one.
    """

    @pytest.mark.parametrize("row", FIXTURE["quartz_special"], ids=case_id)
    def test_matches_quartz(self, row):
        check_row(row)

    def test_last_friday_of_2026_fires_monthly_then_ends(self):
        cron = parse("0 15 10 ? * 6L 2026")
        got = [iso_utc(t) for t in cron.iter_after(NOW, UTC)]
        assert got[:3] == ["2026-01-30T10:15:00Z", "2026-02-27T10:15:00Z", "2026-03-27T10:15:00Z"]
        assert len(got) == 12 and got[-1] == "2026-12-25T10:15:00Z"
        assert cron.next_after(at(got[-1]), UTC) is None

    def test_next_after_is_strictly_after(self):
        cron = parse("0 0 12 * * ?")
        noon = at("2026-01-01T12:00:00Z")
        assert cron.next_after(noon - 0.5, UTC) == noon
        assert cron.next_after(noon, UTC) == noon + 86400
        assert cron.next_after(noon - 1, UTC) == noon

    def test_a_year_range_wholly_in_the_past_is_accepted_and_never_fires(self):
        assert parse("0 0 0 1 1 ? 2020-2021").next_after(NOW, UTC) is None


class TestQuartzRandom:
    """2,500 random Quartz expressions (UTC, generated deterministically), 5 fires each from Quartz 2.3.2."""

    @pytest.mark.slow  # the whole fixture; TestQuartzSpecials is the inner loop's share
    @pytest.mark.parametrize("row", FIXTURE["quartz_random"], ids=case_id)
    def test_matches_quartz(self, row):
        check_row(row)


class TestUnix:
    """5-field expressions, cronsim's answers: names, L, nL, #, the day-of-month/day-of-week OR rule."""

    @pytest.mark.slow  # the whole fixture
    @pytest.mark.parametrize("row", FIXTURE["unix"], ids=case_id)
    def test_matches_cronsim(self, row):
        check_row(row)

    def test_both_day_fields_restricted_fire_on_either(self):
        got = [iso_utc(t) for t in fires("0 0 13 * 5", UTC, NOW, 4)]
        assert got == ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"]

    def test_a_day_field_starting_with_a_star_makes_both_apply(self):
        got = [iso_utc(t) for t in fires("0 0 */2 * 1", UTC, NOW, 3)]
        assert got == ["2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z"]

    def test_sunday_is_0_and_7(self):
        assert fires("0 0 * * 0", UTC, NOW, 5) == fires("0 0 * * 7", UTC, NOW, 5) == fires("0 0 * * SUN", UTC, NOW, 5)


class TestCronieSyntax:
    """cronie's additions to the Unix dialect: day-of-week ranges ending on Sunday as 0, and macros."""

    @pytest.mark.parametrize("row", FIXTURE["unix_cronie"], ids=case_id)
    def test_matches_croniter_and_cronsim(self, row):
        check_row(row)

    @pytest.mark.parametrize("row", FIXTURE["unix_cronie"][::4], ids=case_id)
    def test_fires_as_its_plain_spelling(self, row):
        start = at(row["start"])
        zone = load_zone(row["zone"])
        assert fires(row["expr"], zone, start, 20) == fires(row["cronsim_expr"], zone, start, 20)

    @pytest.mark.parametrize(
        "expr, normalized",
        [
            ("0 0 * * MON-SUN", "0 0 * * 1-0"), ("0 0 * * 5-0", "0 0 * * 5-0"), ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("  @DAILY ", "0 0 * * *"),
        ],
    )
    def test_a_macro_is_unix_and_keeps_its_spelling(self, expr, normalized):
        cron = parse(expr)
        assert (cron.expr, cron.dialect, cron.normalized) == (expr.strip(), "unix", normalized)

    def test_hourly_follows_real_time_and_daily_a_fixed_time_across_dst(self):
        """As cronie: the hour of @hourly is `*`, so both passes of the repeated hour fire."""
        fall_back = at("2026-11-01T04:30:00Z")  # 00:30 EDT; 01:00-01:59 happens twice
        assert [local(t, NY) for t in fires("@hourly", NY, fall_back, 3)] == [
            "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]
        assert fires("@daily", NY, fall_back, 2) == fires("0 0 * * *", NY, fall_back, 2)

    def test_reboot_is_refused_saying_why(self):
        with pytest.raises(CronError) as err:
            parse("@reboot")
        assert err.value.field == "expression"
        assert "no boot to attach it to" in str(err.value) and "@daily" in str(err.value)

    @pytest.mark.parametrize(
        "expr, reason",
        [
            ("@fortnightly", "unknown macro '@fortnightly'; the macros are @hourly, @daily, @midnight, @weekly, "
                             "@monthly, @yearly, @annually"),
            ("@daily *", "a macro such as @daily stands alone, without other fields"),
            ("0 0 0 @daily * ?", "macros such as @daily are Unix-only and stand alone; a Quartz expression has no "
                                 "macros (in Quartz, @daily is '0 0 0 * * ?')"),
            ("@hourly * * * * ? *", "macros such as @hourly are Unix-only and stand alone; a Quartz expression has "
                                    "no macros (in Quartz, @hourly is '0 0 * * * ?')"),
            ("daily", "has 1 field; expected 5 (Unix) or 6-7 (Quartz: seconds first)"),
            ("0 0 * *", "has 4 fields; expected 5 (Unix) or 6-7 (Quartz: seconds first)"),
        ],
    )
    def test_misused_macros_and_field_counts_say_what_is_wrong(self, expr, reason):
        with pytest.raises(CronError) as err:
            parse(expr)
        assert (err.value.field, err.value.reason) == ("expression", reason)

    @pytest.mark.parametrize("expr", ["0 0 * * 6-1", "0 0 * * SAT-MON", "0 0 * * 0-6-0", "0 0 0 ? * MON-0"])
    def test_only_sunday_may_end_a_range_below_its_start(self, expr):
        """cronie reads an end of 0 as 7; other reversed ranges stay errors (in Quartz they wrap)."""
        if expr.count(" ") == 5:
            with pytest.raises(CronError):
                parse(expr)  # Quartz's day-of-week is 1-7: no 0 at all
            return
        with pytest.raises(CronError) as err:
            parse(expr)
        assert err.value.field == "day-of-week"


class TestDST:
    """Wall-clock fields across DST changes, as cronie and cronsim do (docs/time.md), not as Quartz does."""

    @pytest.mark.slow  # the whole fixture; the hand-written DST cases below are the inner loop's share
    @pytest.mark.parametrize("row", FIXTURE["dst"], ids=lambda r: f"{r['expr']} | {r['zone']} | {r['change']} {r['start']}")
    @pytest.mark.parametrize("spelling", ["expr", "quartz_expr"])
    def test_matches_cronsim_or_the_rules(self, row, spelling):
        """cronsim is the oracle, except where a 30-minute change (Lord Howe) makes it skip a
        wall time that still exists; there row["oracle"] is "rules" (brute force in generate.py)."""
        zone = load_zone(row["zone"])
        got = [iso_utc(t) for t in fires(row[spelling], zone, at(row["start"]), len(row["fires"]))]
        assert got == row["fires"], f"{row[spelling]} in {row['zone']} from {row['start']}"

    @pytest.mark.parametrize("row", FIXTURE["quartz_dst_wrong"], ids=lambda r: r["expr"])
    def test_quartz_is_not_the_oracle_across_a_dst_change(self, row):
        zone = load_zone(row["zone"])
        got = [iso_utc(t) for t in fires(row["expr"], zone, at(row["start"]), len(row["fires"]))]
        assert got == row["fires"] == row["cronsim_fires"]
        assert got != row["quartz_fires"]

    def test_spring_forward_fires_a_skipped_time_at_the_end_of_the_gap(self):
        (t,) = fires("30 2 * * *", NY, at("2026-03-08T05:00:00Z"), 1)
        assert local(t, NY) == "2026-03-08T03:00:00-04:00"
        assert parse("0 30 2 * * ?").next_after(at("2026-03-08T05:00:00Z"), NY) == t

    def test_spring_forward_collapses_every_fire_in_the_gap_into_one(self):
        got = [local(t, NY) for t in fires("0,15,30,45 2 * * *", NY, at("2026-03-08T05:00:00Z"), 2)]
        assert got == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        got = [local(t, NY) for t in fires("*/20 30 2 * * ?", NY, at("2026-03-08T05:00:00Z"), 2)]
        assert got == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]

    def test_fall_back_fires_fixed_hour_once_at_the_first_occurrence(self):
        got = [local(t, NY) for t in fires("30 1 * * *", NY, at("2026-10-31T12:00:00Z"), 3)]
        assert got == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]
        got = [local(t, NY) for t in fires("*/20 30 1 * * ?", NY, at("2026-10-31T12:00:00Z"), 4)]
        assert got == [
            "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:20-04:00", "2026-11-01T01:30:40-04:00",
            "2026-11-02T01:30:00-05:00",
        ]

    def test_fall_back_from_inside_the_second_pass_does_not_refire(self):
        second_pass = at("2026-11-01T06:15:00Z")  # 01:15 EST, after 01:30 EDT has fired
        (t,) = fires("30 1 * * *", NY, second_pass, 1)
        assert local(t, NY) == "2026-11-02T01:30:00-05:00"

    def test_fall_back_hourly_fires_in_both_passes(self):
        got = [local(t, NY) for t in fires("0 * * * *", NY, at("2026-11-01T04:30:00Z"), 3)]
        assert got == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]

    def test_spring_forward_hourly_skips_the_missing_hour(self):
        got = [local(t, NY) for t in fires("0 * * * *", NY, at("2026-03-08T05:30:00Z"), 2)]
        assert got == ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"]

    def test_lord_howe_half_hour_change(self):
        lhi = load_zone("Australia/Lord_Howe")
        (t,) = fires("15 2 * * *", lhi, at("2026-10-03T12:00:00Z"), 1)
        assert local(t, lhi) == "2026-10-04T02:30:00+11:00"
        got = [local(t, lhi) for t in fires("30 * * * *", lhi, at("2026-10-03T14:00:00Z"), 2)]
        assert got == ["2026-10-04T01:30:00+10:30", "2026-10-04T02:30:00+11:00"]
        got = [local(t, lhi) for t in fires("45 1 * * *", lhi, at("2026-04-04T12:00:00Z"), 2)]
        assert got == ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]

    def test_chatham_quarter_hour_zone(self):
        chatham = load_zone("Pacific/Chatham")
        (t,) = fires("0 3 * * *", chatham, at("2026-09-26T12:00:00Z"), 1)
        assert local(t, chatham) == "2026-09-27T03:45:00+13:45"

    def test_utc_has_no_dst(self):
        assert fires("30 2 * * *", UTC, at("2026-03-08T00:00:00Z"), 1) == [at("2026-03-08T02:30:00Z")]


class TestZones:
    def test_known_zone_loads(self):
        assert load_zone("Europe/Berlin").key == "Europe/Berlin"

    @pytest.mark.parametrize(
        "name",
        ["Mars/Base", "utc", "America", "America/", "/etc/passwd", "../etc/passwd", "UTC\0", "x" * 10_000, "", "Europe/../UTC"],
    )
    def test_unknown_zone_is_a_validation_error_on_timezone(self, name):
        with pytest.raises(ValidationError) as err:
            load_zone(name)
        assert err.value.field == "timezone"
        assert err.value.reason.startswith("unknown time zone '")
        assert len(str(err.value)) < 120

    def test_message_names_the_zone(self):
        with pytest.raises(ValidationError) as err:
            load_zone("Mars/Base")
        assert str(err.value) == "timezone: unknown time zone 'Mars/Base'"


class TestCronNextCommand:
    """`schedd cron next`, through the CLI's entry point."""

    def test_an_expression_with_no_fire_time_left_says_so_and_exits_2(self, capsys):
        from schedd.cli import main

        assert main(["cron", "next", "0 0 12 ? * * 1999", "--after", "2026-01-01T00:00:00Z"]) == 2
        out = capsys.readouterr()
        assert out.out == ""
        assert out.err == "schedd: no fire time after 2026-01-01T00:00:00+00:00\n"

    def test_fire_times_before_the_end_are_printed_and_the_command_succeeds(self, capsys):
        from schedd.cli import main

        assert main(["cron", "next", "0 0 0 1 1 ? 2026-2027", "--after", "2026-01-01T00:00:00Z", "--count", "5"]) == 0
        assert capsys.readouterr().out == "2027-01-01T00:00:00+00:00\n"

    def test_macros_and_sunday_ranges_are_read_as_cronie_reads_them(self, capsys):
        from schedd.cli import main

        assert main(["cron", "next", "@weekly", "--after", "2026-01-01T00:00:00Z", "--count", "2"]) == 0
        assert capsys.readouterr().out == "2026-01-04T00:00:00+00:00\n2026-01-11T00:00:00+00:00\n"
        assert main(["cron", "next", "0 9 * * FRI-0", "--after", "2026-01-01T00:00:00Z", "--count", "3"]) == 0
        assert capsys.readouterr().out.split() == [
            "2026-01-02T09:00:00+00:00", "2026-01-03T09:00:00+00:00", "2026-01-04T09:00:00+00:00"]
        assert main(["cron", "next", "@reboot"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("schedd: expression: @reboot is not a time") and err.count("\n") == 1
