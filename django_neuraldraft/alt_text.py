"""Alternative text proposed from a prompt, for an editor to confirm; never applied silently."""

from __future__ import annotations

import re

#: Screen readers read long alt text badly; 125 characters is the usual advice.
MAX_PROPOSAL_LENGTH = 125

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def propose_alt_text(prompt: str) -> str:
    """Return the prompt's first sentence, tidied and shortened, or ``""`` for an empty prompt.

    A prompt describes what the image shows, which is what alt text should
    say; instructions about style belong to the ``style`` field, not here.
    """
    text = " ".join(prompt.split())
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".!?,;: ")
    if len(sentence) > MAX_PROPOSAL_LENGTH:
        cut = sentence[: MAX_PROPOSAL_LENGTH - 1]
        sentence = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(",;: ") + "…"
    return sentence[:1].upper() + sentence[1:]
