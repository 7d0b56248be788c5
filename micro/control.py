"""Control (monitoring) subjects and response types (ADR-32, Discovery and Status).

Every service instance answers ``PING``, ``INFO`` and ``STATS`` on nine plain
subscriptions: ``P.V`` (all services), ``P.V.N`` (every instance named ``N``) and
``P.V.N.I`` (instance ``I`` of ``N``), with ``P`` the API prefix (default ``$SRV``).
"""

from __future__ import annotations

from enum import Enum

from micro.errors import ValidationError
from micro.validation import validate_name

__all__ = [
    "DEFAULT_API_PREFIX",
    "INFO_RESPONSE_TYPE",
    "PING_RESPONSE_TYPE",
    "STATS_RESPONSE_TYPE",
    "ServiceVerb",
    "build_control_subjects",
    "control_subject",
    "control_subjects",
    "validate_api_prefix",
]

DEFAULT_API_PREFIX = "$SRV"
"""The control subject prefix every reference implementation uses."""

PING_RESPONSE_TYPE = "io.nats.micro.v1.ping_response"
INFO_RESPONSE_TYPE = "io.nats.micro.v1.info_response"
STATS_RESPONSE_TYPE = "io.nats.micro.v1.stats_response"


class ServiceVerb(str, Enum):
    """The three control verbs; the value is the upper-case subject token."""

    PING = "PING"
    INFO = "INFO"
    STATS = "STATS"

    def __str__(self) -> str:
        return self.value

    @property
    def response_type(self) -> str:
        """The ``type`` of the JSON document answering this verb."""
        return _RESPONSE_TYPES[self]


_RESPONSE_TYPES = {
    ServiceVerb.PING: PING_RESPONSE_TYPE,
    ServiceVerb.INFO: INFO_RESPONSE_TYPE,
    ServiceVerb.STATS: STATS_RESPONSE_TYPE,
}
_VERBS_BY_TEXT = {verb.value: verb for verb in ServiceVerb}


def _to_verb(verb: ServiceVerb | str) -> ServiceVerb:
    if isinstance(verb, ServiceVerb):
        return verb
    if isinstance(verb, str):
        found = _VERBS_BY_TEXT.get(verb.upper())
        if found is not None:
            return found
    raise ValidationError(f"invalid control verb {verb!r}: must be one of PING, INFO, STATS")


def validate_api_prefix(api_prefix: str) -> str:
    """Check a control API prefix: a literal subject of one or more tokens.

    It is used verbatim and may be multi-token (``hello.service``); it must be
    non-empty, contain no whitespace, no empty token and no wildcard.  Returns it
    unchanged; raises :class:`ValidationError` naming the prefix and the rule.
    """
    if not isinstance(api_prefix, str):
        raise ValidationError(f"api prefix must be a str, got {type(api_prefix).__name__}")
    if not api_prefix:
        raise ValidationError("invalid api prefix '': must not be empty")
    if any(char.isspace() for char in api_prefix):
        raise ValidationError(f"invalid api prefix {api_prefix!r}: must not contain whitespace")
    for token in api_prefix.split("."):
        if not token:
            raise ValidationError(
                f"invalid api prefix {api_prefix!r}: must not contain empty tokens"
            )
        if "*" in token or ">" in token:
            raise ValidationError(
                f"invalid api prefix {api_prefix!r}: must not contain wildcards ('*' or '>')"
            )
    return api_prefix


def control_subject(
    verb: ServiceVerb | str,
    name: str | None = None,
    id: str | None = None,
    *,
    api_prefix: str = DEFAULT_API_PREFIX,
) -> str:
    """Build the control subject for ``verb``, optionally narrowed to a name and an id.

    ``control_subject("PING")`` -> ``$SRV.PING``; with ``name`` -> ``$SRV.PING.<name>``;
    with both -> ``$SRV.PING.<name>.<id>``.  Case of name and id is preserved; a
    verb given as text may be in any case.  ``None`` or ``""`` mean "not given".

    Raises :class:`ValidationError` for an unknown verb, an id without a name, a
    name or id that is not a valid subject token (``^[A-Za-z0-9\\-_]+$``, as nats.js
    checks) or an invalid ``api_prefix`` (see :func:`validate_api_prefix`).
    """
    parts = [validate_api_prefix(api_prefix), _to_verb(verb).value]
    if name:
        parts.append(validate_name(name, "service name"))
        if id:
            parts.append(validate_name(id, "service id"))
    elif id:
        raise ValidationError(f"a service name is required when an id is given (id {id!r})")
    return ".".join(parts)


def control_subjects(
    name: str, id: str, api_prefix: str = DEFAULT_API_PREFIX
) -> list[tuple[ServiceVerb, str]]:
    """The nine ``(verb, subject)`` pairs a service instance subscribes to.

    Order: for PING, then INFO, then STATS, the all / by-name / by-id subjects.
    Raises :class:`ValidationError` like :func:`control_subject`; ``name`` and
    ``id`` are both required here.
    """
    if not name or not id:
        raise ValidationError(
            f"control subjects need a service name and an id, got name {name!r} and id {id!r}"
        )
    validate_api_prefix(api_prefix)
    control_subject(ServiceVerb.PING, name, id, api_prefix=api_prefix)  # name and id rules
    return build_control_subjects(name, id, api_prefix)


def build_control_subjects(name: str, id: str, api_prefix: str) -> list[tuple[ServiceVerb, str]]:
    """:func:`control_subjects` for values that are already validated (no checks at all).

    A service validates its name, id and prefix once at creation and builds its nine
    subjects with this at every start."""
    pairs: list[tuple[ServiceVerb, str]] = []
    for verb in ServiceVerb:
        subject = f"{api_prefix}.{verb.value}"
        by_name = f"{subject}.{name}"
        pairs += [(verb, subject), (verb, by_name), (verb, f"{by_name}.{id}")]
    return pairs
