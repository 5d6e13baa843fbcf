"""The native engine's text against Python's: float repr, JSON strings, str.strip, output ids
and the times its fast reader accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contract.event_files import RowValueError, parse_occurred_at
from streams.core.events import output_event_id, to_ms

native = pytest.importorskip("loyalty_native")

SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_SPACES = "\u200b\ufeff\x00x"


@given(st.floats(allow_nan=False))
def test_floats_are_written_as_python_repr(x: float) -> None:
    assert native.float_repr(x) == repr(x).replace("inf", "Infinity")


@pytest.mark.parametrize(
    "x", [0.0, -0.0, 1.0, 1e16, 1e15, 1e-4, 1e-5, 5e-324, 1.7976931348623157e308, 0.7266, 1 / 3]
)
def test_float_repr_at_the_switch_points(x: float) -> None:
    assert native.float_repr(x) == repr(x)


@given(st.text())
def test_strings_are_written_as_json_dumps(text: str) -> None:
    assert native.json_string(text) == json.dumps(text)


@given(st.text(st.sampled_from(SPACES + NOT_SPACES)) | st.text())
def test_strip_strips_what_python_strips(text: str) -> None:
    assert native.strip(text) == text.strip()


@given(st.text(), st.text(), st.text())
def test_output_ids_are_the_cores(customer_id: str, kind: str, cause: str) -> None:
    assert native.output_event_id(customer_id, kind, cause) == output_event_id(
        customer_id, kind, cause
    )


@given(
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)),
    st.sampled_from(["T", " "]),
    st.sampled_from([0, 3, 6]),
)
def test_times_the_fast_reader_takes_are_read_as_python_reads_them(
    moment: datetime, separator: str, digits: int
) -> None:
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    text += "Z"
    assert native.parse_time(text) == to_ms(parse_occurred_at(text))


@given(
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z?\Z")
)
def test_times_the_fast_reader_refuses_go_to_python(text: str) -> None:
    fast = native.parse_time(text)
    if fast is None:
        return  # the Python reader reads it, whatever it makes of it
    assert fast == to_ms(parse_occurred_at(text))


def test_a_time_python_refuses_is_refused() -> None:
    for text in ("2025-02-29T00:00:00Z", "2025-01-01T24:00:00Z", "0000-01-01T00:00:00Z"):
        assert native.parse_time(text) is None
        with pytest.raises(RowValueError):
            parse_occurred_at(text)
    assert native.parse_time("2024-02-29T23:59:59.999Z") == to_ms(
        datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)
    )
