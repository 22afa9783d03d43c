"""Old keyword names kept for one release, with a ``DeprecationWarning`` that names the new keyword."""

from __future__ import annotations

import warnings
from typing import TypeVar

ValueT = TypeVar("ValueT")


def renamed_keyword(new_value: ValueT, old_value: ValueT, new: str, old: str, stacklevel: int = 3) -> ValueT:
    """The value given for keyword ``new``, or for its deprecated old name ``old`` (warning when that one is used).

    Raises:
        TypeError: both keywords were given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"got both {new}= and {old}=; pass only {new}= ({old}= is its deprecated old name)")
    warnings.warn(f"{old}= is deprecated and will be removed in the next release; use {new}= instead",
                  DeprecationWarning, stacklevel=stacklevel)
    return old_value
