"""The subject trie agrees with the matching oracle ``transports.subjects.matches``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.memory.sublist import Sublist
from transports.subjects import is_valid_pattern, is_valid_subject, matches

# A tiny alphabet, so that generated patterns and subjects actually match each other.
_LITERALS = st.sampled_from(["a", "b", "c"])
subjects = st.lists(_LITERALS, min_size=1, max_size=4).map(".".join)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(st.sampled_from(["a", "b", "c", "*"]), min_size=1, max_size=4))
    if draw(st.booleans()):
        tokens[-1] = ">"
    return ".".join(tokens)


Entry = tuple[str, int, "str | None"]  # (pattern, item, queue)
entries = st.tuples(patterns(), st.integers(0, 5), st.sampled_from([None, "q1", "q2"]))
operations = st.lists(st.tuples(st.sampled_from(["insert", "remove"]), entries), max_size=40)


def _expected(stored: set[Entry], subject: str) -> tuple[Counter[int], dict[str, Counter[int]]]:
    plain: Counter[int] = Counter()
    groups: dict[str, Counter[int]] = {}
    for pattern, item, queue in stored:
        if matches(pattern, subject):
            if queue is None:
                plain[item] += 1
            else:
                groups.setdefault(queue, Counter())[item] += 1
    return plain, groups


def _groups(groups: Iterable[Iterable[int]]) -> list[list[tuple[int, int]]]:
    """Queue groups as a comparable value: each group a sorted multiset of members."""
    return sorted(sorted(Counter(group).items()) for group in groups)


def _check(sublist: Sublist[int], stored: set[Entry], subject: str) -> None:
    plain, groups = sublist.match(subject)
    want_plain, want_groups = _expected(stored, subject)
    assert Counter(plain) == want_plain
    assert all(groups), "a queue group in a match result is never empty"
    assert _groups(groups) == _groups(counter.elements() for counter in want_groups.values())


@given(operations, st.lists(subjects, min_size=1, max_size=8))
def test_match_equals_the_oracle_after_any_inserts_and_removes(
    ops: list[tuple[str, Entry]], probes: list[str]
) -> None:
    sublist: Sublist[int] = Sublist(cache_size=4)
    stored: set[Entry] = set()
    for op, (pattern, item, queue) in ops:
        assert is_valid_pattern(pattern)
        if op == "insert":
            if (pattern, item, queue) in stored:
                with pytest.raises(ValueError, match="already subscribed"):
                    sublist.insert(pattern, item, queue)
            else:
                sublist.insert(pattern, item, queue)
                stored.add((pattern, item, queue))
        else:
            assert sublist.remove(pattern, item, queue) == ((pattern, item, queue) in stored)
            stored.discard((pattern, item, queue))
        assert len(sublist) == len(stored)
        for subject in probes:  # interleaved probes exercise cache invalidation
            assert is_valid_subject(subject)
            _check(sublist, stored, subject)


@given(st.lists(entries, max_size=20), subjects)
def test_queue_groups_are_grouped_by_name_across_patterns(
    stored_list: list[Entry], subject: str
) -> None:
    sublist: Sublist[int] = Sublist()
    stored = set(stored_list)
    for pattern, item, queue in stored:
        sublist.insert(pattern, item, queue)
    _, groups = sublist.match(subject)
    _, want_groups = _expected(stored, subject)
    assert _groups(groups) == _groups(counter.elements() for counter in want_groups.values())


def test_removing_everything_prunes_the_trie() -> None:
    sublist: Sublist[str] = Sublist()
    sublist.insert("a.b.c", "x")
    sublist.insert("a.*.>", "y", "q")
    sublist.insert("a", "z")
    assert sublist.remove("a.b.c", "x")
    assert sublist.remove("a.*.>", "y", "q")
    assert sublist.remove("a", "z")
    assert len(sublist) == 0
    assert sublist._root.is_empty()
    assert not sublist._literal


def test_remove_of_something_not_stored_returns_false() -> None:
    sublist: Sublist[str] = Sublist()
    sublist.insert("a.b", "x", "q")
    assert not sublist.remove("a.c", "x")
    assert not sublist.remove("a.b", "x")  # stored in queue q, not plain
    assert not sublist.remove("a.b", "x", "other")
    assert not sublist.remove("a.b", "y", "q")
    assert sublist.match("a.b") == ((), (("x",),))


def test_results_are_cached_and_the_cache_is_dropped_on_change() -> None:
    sublist: Sublist[str] = Sublist()
    sublist.insert("a.*", "x")
    first = sublist.match("a.b")
    assert sublist.match("a.b") is first
    assert sublist.cached_subjects == 1
    sublist.insert("a.b", "y")
    assert sublist.cached_subjects == 0
    assert sublist.match("a.b") == (("y", "x"), ())


def test_the_cache_is_bounded_and_skips_the_uncached_prefix() -> None:
    sublist: Sublist[str] = Sublist(cache_size=3, uncached_prefix="_INBOX.")
    sublist.insert(">", "all")
    for index in range(10):
        assert sublist.match(f"s.{index}") == (("all",), ())
        assert sublist.cached_subjects <= 3
    before = sublist.cached_subjects
    assert sublist.match("_INBOX.abc.1") == (("all",), ())
    assert sublist.cached_subjects == before


def test_a_zero_cache_size_disables_caching_and_bad_sizes_are_rejected() -> None:
    sublist: Sublist[str] = Sublist(cache_size=0)
    sublist.insert("a", "x")
    assert sublist.match("a") == (("x",), ())
    assert sublist.cached_subjects == 0
    with pytest.raises(ValueError, match="-1"):
        Sublist(cache_size=-1)


def test_full_wildcard_needs_at_least_one_more_token() -> None:
    sublist: Sublist[str] = Sublist()
    sublist.insert("a.>", "x")
    sublist.insert(">", "y")
    assert sublist.match("a") == (("y",), ())
    assert sorted(sublist.match("a.b.c")[0]) == ["x", "y"]


def test_inbox_style_patterns_share_one_cached_result_until_anything_changes() -> None:
    sublist: Sublist[str] = Sublist(uncached_prefix="_INBOX.")
    sublist.insert("_INBOX.abc.*", "mux")
    first = sublist.match("_INBOX.abc.1")
    assert first == (("mux",), ())
    assert sublist.match("_INBOX.abc.2") is first  # one entry for every reply token
    assert sublist.match("_INBOX.abc.1.2") == ((), ())  # '*' is one token only
    sublist.insert("_INBOX.abc.2", "literal")  # a literal match: computed, not shared
    assert sublist.match("_INBOX.abc.2") == (("literal", "mux"), ())
    assert sublist.match("_INBOX.abc.3") == (("mux",), ())
    sublist.insert("_INBOX.>", "spy", "q")  # a trie pattern: the shortcut is off
    assert sublist.match("_INBOX.abc.3") == (("mux",), (("spy",),))
    assert sublist.remove("_INBOX.>", "spy", "q")
    assert sublist.remove("_INBOX.abc.*", "mux")
    assert sublist.match("_INBOX.abc.3") == ((), ())
