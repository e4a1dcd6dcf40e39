"""The one check of channel names: what a model, a file, a shard or a manifest holds against what is expected.

Every place that compares channel names (a processor against its model, a shard record or a multi-channel file
against the model's channels, a requested channel list against HPA's order, a release's variant) calls
`check_channels`, so every refusal reads the same way:

    <source>: expected channels [...], found [...] (missing [...]); <what to do>

It imports nothing heavy (no torch), so every module can use it.
"""

from __future__ import annotations

from collections.abc import Sequence


class ChannelMismatchError(ValueError):
    """Channel names differ from the expected ones."""


def channel_mismatch_message(
    source: str,
    expected: Sequence[str] | str,
    found: Sequence[str | None],
    hint: str = "",
    missing: Sequence[str] | None = None,
) -> str:
    """`<source>: expected channels <expected>, found <found> (missing ...)[; hint]`, the one wording.

    `expected` may be a description (e.g. "one of [...]"); `missing` defaults to the expected names not found.
    """
    found = [None if name is None else str(name) for name in found]
    if isinstance(expected, str):
        text, missing = expected, list(missing or [])
    else:
        text = str(list(expected))
        missing = [name for name in expected if name not in found] if missing is None else list(missing)
    message = f"{source}: expected channels {text}, found {found}"
    if missing:
        message += f" (missing {missing})"
    return message + (f"; {hint}" if hint else "")


def check_channels(
    found: Sequence[str | None],
    expected: Sequence[str],
    source: str,
    exact: bool = False,
    hint: str = "",
    error: type[Exception] = ChannelMismatchError,
) -> list[int]:
    """The index in `found` of each `expected` channel, in `expected` order.

    With `exact`, `found` must be `expected` itself (same names, same order); otherwise it must hold every
    expected channel, once (extra channels are left out by the indices). Raises `error` (a `ChannelMismatchError`
    by default) with the `channel_mismatch_message` of `source`, the expected and the found names.
    """
    found, expected = list(found), list(expected)
    if exact:
        ok = found == expected
    else:
        ok = bool(expected) and all(found.count(name) == 1 for name in expected)
    if not ok or not expected:
        raise error(channel_mismatch_message(source, expected, found, hint))
    return [found.index(name) for name in expected]


__all__ = ["ChannelMismatchError", "channel_mismatch_message", "check_channels"]
