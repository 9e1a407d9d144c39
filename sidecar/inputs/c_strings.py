"""Strings the native library receives as C strings: a NUL character would silently end one early.

Paths and prompts holding one are refused, naming the field, before any file is touched. A prompt
is refused rather than stripped: the model then reads exactly the text the request gave, which is
also what the PNG's `parameters` record. (Other strings that reach the library, such as sampler
names, are closed lists.)
"""

from __future__ import annotations

from ..rpc.errors import invalid_params


def refuse_nul(field: str, value: str) -> None:
    if "\0" in value:
        raise invalid_params(
            field, "must not contain a NUL character (U+0000): the native library would read only the text before it"
        )
