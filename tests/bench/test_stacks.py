"""Reading py-spy's collapsed stacks: own time goes to the innermost code frame, inclusive
time to every area on the stack once, and py-spy's pseudo-frames are not code."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.stacks import area_of, parse_frame, read_collapsed

RUN = "_run_once (asyncio/base_events.py:1922)"
AGENT = "_process (streams/worker/app.py:170)"
DECODE = "_read_body (streams/contract/codec.py:88)"
FOLD = "apply (streams/core/fold.py:301)"
SEND = "send (aiokafka/producer/producer.py:410)"


def test_own_time_is_the_innermost_frame_and_inclusive_counts_an_area_once() -> None:
    profile = read_collapsed(
        [
            f'process 1:"python";thread (0x1);{RUN};{AGENT};{DECODE} 3\n',
            f"{RUN};{AGENT};{FOLD};{FOLD} 5\n",  # recursion: the core counted once inclusive
            f"{RUN};{AGENT};{SEND} 2\n",
            "not a stack line\n",
        ]
    )
    assert profile.samples == 10
    assert profile.area_own == {
        "our codec (streams.contract)": 3,
        "our core (streams.core)": 5,
        "aiokafka": 2,
    }
    assert profile.area_inclusive["our worker shell (streams.worker)"] == 10
    assert profile.area_inclusive["our core (streams.core)"] == 5
    assert profile.area_inclusive["asyncio"] == 10
    top = profile.top_own(2)
    assert [(name, samples) for name, _, samples, _ in top] == [
        ("apply (streams/core/fold.py)", 5),
        ("_read_body (streams/contract/codec.py)", 3),
    ]


def test_frames_of_the_same_function_on_other_lines_are_one_function() -> None:
    profile = read_collapsed([f"{RUN};{FOLD} 1\n", f"{RUN};apply (streams/core/fold.py:7) 4\n"])
    assert profile.top_own(1)[0][:3] == (
        "apply (streams/core/fold.py)",
        "our core (streams.core)",
        5,
    )


def test_pseudo_frames_and_site_packages_paths() -> None:
    assert parse_frame('process 42:"python -m streams.cli worker"') is None
    assert parse_frame("thread (0x7f0a)") is None
    frame = parse_frame(
        "Store._set (/x/.venv/lib/python3.11/site-packages/faust/stores/rocksdb.py:1)"
    )
    assert frame is not None
    assert frame.name == "Store._set (faust/stores/rocksdb.py)"
    assert frame.area == "faust stores (table writes)"
    # the more specific room wins over the package it lives in
    assert area_of("streams/contract/codec.py") != area_of("streams/cli/worker.py")
    assert area_of("faust/transport/consumer.py") == "faust transport (consumer, producer)"


frames = st.sampled_from([RUN, AGENT, DECODE, FOLD, SEND])


@given(st.lists(st.tuples(st.lists(frames, min_size=1, max_size=6), st.integers(1, 50))))
def test_every_sample_is_own_time_somewhere_and_inclusive_is_at_least_own(
    stacks: list[tuple[list[str], int]],
) -> None:
    profile = read_collapsed(f"{';'.join(stack)} {count}\n" for stack, count in stacks)
    assert profile.samples == sum(count for _, count in stacks)
    assert sum(profile.own.values()) == profile.samples
    assert sum(profile.area_own.values()) == profile.samples
    for area, own in profile.area_own.items():
        assert own <= profile.area_inclusive[area] <= profile.samples
