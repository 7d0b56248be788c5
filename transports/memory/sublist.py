"""A subject trie ("sublist", after nats-server's) mapping subscription patterns to subscribers.

Patterns without wildcards (most of them: a service's control subjects, request
subjects) are kept in a dict by subject, and patterns ``<literal tokens>.*`` (a
connection's reply inbox ``_INBOX.<id>.*``) in a dict by their literal part, so
inserting, removing and matching them is one lookup each.  Other wildcard patterns are
stored token by token in a trie; ``*`` and
``>`` are ordinary child keys of a node (literal subject tokens can never contain ``*`` or
``>``, see ``transports.subjects``).  A match walks at most three children per token (the
literal token, ``*`` and ``>``), so its cost depends on the subject's length and on the
patterns that actually match, not on how many unrelated patterns are stored.

Results are cached per subject (a bounded cache, emptied when full; while only
``<literal>.*`` patterns can match, per subject minus its last token instead, so the
replies to one inbox share one entry) and the whole cache is dropped on every insert or
remove, as nats-server invalidates its own match
cache.  A result groups queue subscribers by queue name *across* patterns: a
member of queue ``q`` on ``foo.*`` and one on ``foo.bar`` form one group for
``foo.bar``, exactly as the server groups them.

Inputs are assumed valid (validate with ``transports.subjects`` first).  Ordering is
deterministic: subscribers of the literal pattern equal to the subject come first, then
those of ``<subject minus its last token>.*``, then the trie is walked level by level
(literal, ``*``, then ``>`` children); within a pattern, subscribers keep their insertion
order.  The class is not thread-safe.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["DEFAULT_CACHE_SIZE", "Match", "Sublist"]

T = TypeVar("T", bound=Hashable)

DEFAULT_CACHE_SIZE = 4096
"""How many subjects' match results are kept before the cache is emptied."""

Match = tuple[tuple[T, ...], tuple[tuple[T, ...], ...]]
"""``(plain subscribers, queue groups)``; each queue group is a non-empty tuple of members."""


class _Node(Generic[T]):
    """One token position: children by token, and the subscribers whose pattern ends here."""

    __slots__ = ("children", "plain", "queues")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.plain: dict[T, None] = {}
        self.queues: dict[str, dict[T, None]] = {}

    def is_empty(self) -> bool:
        return not (self.children or self.plain or self.queues)


class Sublist(Generic[T]):
    """Pattern -> subscriber index with a per-subject match cache.

    ``insert``/``remove`` are O(pattern tokens); ``match`` is a dict lookup when the
    subject is cached and otherwise a walk bounded by the subject's length and the
    matching patterns.
    """

    __slots__ = (
        "_by_head",
        "_cache",
        "_cache_size",
        "_count",
        "_last_star",
        "_literal",
        "_root",
        "_uncached_prefix",
    )

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE, uncached_prefix: str = "") -> None:
        """``uncached_prefix``: subjects starting with it are never cached (use it for
        one-off subjects such as request inboxes, which would only churn the cache)."""
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"invalid cache_size {cache_size!r}: must be an int >= 0")
        self._root: _Node[T] = _Node()  # wildcard patterns
        self._literal: dict[str, _Node[T]] = {}  # patterns without wildcards (no children)
        self._last_star: dict[str, _Node[T]] = {}  # "<literal>.*" patterns, by "<literal>"
        # results by "<subject minus its last token>" while only _last_star can match
        self._by_head: dict[str, Match[T]] = {}
        self._cache: dict[str, Match[T]] = {}
        self._cache_size = cache_size
        self._uncached_prefix = uncached_prefix or None
        self._count = 0

    def __len__(self) -> int:
        """Number of (pattern, subscriber) entries stored."""
        return self._count

    @property
    def cached_subjects(self) -> int:
        """Number of match results currently cached (per subject, or per subject minus its
        last token while only ``<literal>.*`` patterns can match)."""
        return len(self._cache) + len(self._by_head)

    def insert(self, pattern: str, item: T, queue: str | None = None) -> None:
        """Add ``item`` under ``pattern`` (in queue group ``queue`` if given).

        Raises ``ValueError`` if ``item`` is already stored under this pattern.
        """
        flat = self._flat_index(pattern)
        if flat is None:
            node = self._root
            for token in pattern.split("."):
                child = node.children.get(token)
                if child is None:
                    child = node.children[token] = _Node()
                node = child
        else:
            index, key = flat
            found = index.get(key)
            node = index[key] = _Node() if found is None else found
        members = node.plain if queue is None else node.queues.setdefault(queue, {})
        if item in members:
            raise ValueError(f"{item!r} is already subscribed to {pattern!r}")
        members[item] = None
        self._count += 1
        self._cache.clear()
        self._by_head.clear()

    def remove(self, pattern: str, item: T, queue: str | None = None) -> bool:
        """Remove ``item`` from ``pattern``; returns False if it was not stored there.

        Nodes left empty are pruned, so the index never grows with removed patterns.
        """
        path: list[tuple[_Node[T], str]] = []  # (parent, token) down to a trie pattern
        flat = self._flat_index(pattern)
        if flat is None:
            node = self._root
            for token in pattern.split("."):
                child = node.children.get(token)
                if child is None:
                    return False
                path.append((node, token))
                node = child
        else:
            index, key = flat
            stored = index.get(key)
            if stored is None:
                return False
            node = stored
        members = node.plain if queue is None else node.queues.get(queue)
        if members is None or item not in members:
            return False
        del members[item]
        if queue is not None and not members:
            del node.queues[queue]
        if flat is not None and node.is_empty():
            index, key = flat
            del index[key]
        for parent, token in reversed(path):
            if not parent.children[token].is_empty():
                break
            del parent.children[token]
        self._count -= 1
        self._cache.clear()
        self._by_head.clear()
        return True

    def match(self, subject: str) -> Match[T]:
        """Every subscriber whose pattern matches the literal ``subject``.

        Returns ``(plain, groups)``: plain subscribers, and one tuple of members per
        queue name.  Each subscriber appears once per pattern it is stored under.
        """
        cached = self._cache.get(subject)
        if cached is not None:
            return cached
        if not self._root.children and subject not in self._literal:
            # only "<head>.*" patterns can match: one result serves every last token (the
            # replies to one request inbox, which the per-subject cache skips)
            head = subject.rpartition(".")[0]
            result = self._by_head.get(head)
            if result is None:
                if len(self._by_head) >= self._cache_size:
                    self._by_head.clear()
                result = self._collect(subject)
                if self._cache_size:
                    self._by_head[head] = result
            return result
        result = self._collect(subject)
        prefix = self._uncached_prefix
        if self._cache_size and (prefix is None or not subject.startswith(prefix)):
            cache = self._cache
            if len(cache) >= self._cache_size:
                cache.clear()  # cheaper than evicting one by one; hot subjects return at once
            cache[subject] = result
        return result

    def _collect(self, subject: str) -> Match[T]:
        """The match result for ``subject``, computed (no cache)."""
        plain: list[T] = []
        groups: dict[str, list[T]] = {}
        exact = self._literal.get(subject)
        if exact is not None:
            _add(exact, plain, groups)
        if self._last_star:
            head, dot, _ = subject.rpartition(".")
            starred = self._last_star.get(head) if dot else None
            if starred is not None:
                _add(starred, plain, groups)
        if self._root.children:
            self._walk(subject, plain, groups)
        return (tuple(plain), tuple(map(tuple, groups.values())) if groups else ())

    def _flat_index(self, pattern: str) -> tuple[dict[str, _Node[T]], str] | None:
        """The dict holding ``pattern`` and its key there, or ``None`` for a trie pattern."""
        if "*" not in pattern and ">" not in pattern:
            return self._literal, pattern
        if pattern.endswith(".*"):
            head = pattern[:-2]
            if "*" not in head and ">" not in head:
                return self._last_star, head
        return None

    def _walk(self, subject: str, plain: list[T], groups: dict[str, list[T]]) -> None:
        """Add the subscribers of the trie's patterns that match ``subject``."""
        nodes = [self._root]
        for token in subject.split("."):
            following: list[_Node[T]] = []
            for node in nodes:
                children = node.children
                if not children:
                    continue
                child = children.get(token)
                if child is not None:
                    following.append(child)
                child = children.get("*")
                if child is not None:
                    following.append(child)
                child = children.get(">")
                if child is not None:  # this token and any after it: '>' matches
                    _add(child, plain, groups)
            nodes = following
            if not nodes:
                break
        for node in nodes:
            _add(node, plain, groups)


def _add(node: _Node[T], plain: list[T], groups: dict[str, list[T]]) -> None:
    """Add the subscribers whose pattern ends at ``node``."""
    if node.plain:
        plain.extend(node.plain)
    if node.queues:
        for name, members in node.queues.items():
            group = groups.get(name)
            if group is None:
                groups[name] = list(members)
            else:
                group.extend(members)
