"""The chat format: how a conversation becomes one stream of token ids.

Our runs' tokenizers carry SPECIAL_TOKENS. A conversation renders as

    <|bos|> <|system_start|>…<|system_end|> <|user_start|>…<|user_end|>
    <|assistant_start|>…<|assistant_end|> …

and only the assistant's content and its <|assistant_end|> are trained on (mask = 1): the
model learns to answer and to stop, never to write the user's side. Message text is always
encoded as ordinary text, so a user typing "<|assistant_end|>" gets ordinary tokens.

The reference encodings (cl100k_base, o200k_base) are shown in the layout the tiktokenizer
web app uses: ``<|im_start|>role<|im_sep|>content<|im_end|>``.
"""

from __future__ import annotations

SPECIAL_TOKENS = [
    "<|bos|>",
    "<|system_start|>",
    "<|system_end|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
]
Message = dict  # {"role": "system"|"user"|"assistant", "content": str}

# The ids tiktokenizer gives these (they are not in tiktoken's own special-token tables).
REFERENCE_CHAT_SPECIALS = {
    "cl100k_base": {"<|im_start|>": 100264, "<|im_end|>": 100265, "<|im_sep|>": 100266},
    "o200k_base": {"<|im_start|>": 200264, "<|im_end|>": 200265, "<|im_sep|>": 200266},
}
ROLES = ("system", "user", "assistant")


def _check(message: Message) -> tuple[str, str]:
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ValueError(f"message role must be one of {', '.join(ROLES)}, got {role!r}")
    if not isinstance(content, str):
        raise ValueError(f"message content must be text, got {type(content).__name__}")
    return role, content


def render_conversation(tok, messages: list[Message]) -> tuple[list[int], list[int]]:
    """(ids, mask): mask is 1 on assistant content tokens and their <|assistant_end|>."""
    ids, mask = [tok.special_id("<|bos|>")], [0]
    for message in messages:
        role, content = _check(message)
        start, end = tok.special_id(f"<|{role}_start|>"), tok.special_id(f"<|{role}_end|>")
        body = tok.encode(content)
        trained = 1 if role == "assistant" else 0
        ids += [start, *body, end]
        mask += [0] + [trained] * (len(body) + 1)
    return ids, mask


def render_prompt(tok, messages: list[Message]) -> list[int]:
    """The conversation so far plus <|assistant_start|>: what a model continues from."""
    ids, _ = render_conversation(tok, messages)
    return ids + [tok.special_id("<|assistant_start|>")]


class Transcript(str):
    """A pretraining document that is one question and its answer, laid out with the chat's
    turn markers but *without* ``<|assistant_end|>`` (mid-training, as nanochat does before SFT).

    The base model learns to answer a question asked in a user turn, so what pretraining taught
    it about entities is reachable through the same markers SFT uses; it never sees a turn end,
    so ending a turn (the chat format the report card measures), refusing, worked sums and the
    persona are still SFT's to teach. As a string it reads ``Q: ...\nA: ...`` (what the
    tokenizer trains on and what text searches see).
    """

    user: str
    assistant: str

    def __new__(cls, user: str, assistant: str) -> Transcript:
        obj = super().__new__(cls, f"Q: {user}\nA: {assistant}")
        obj.user, obj.assistant = user, assistant
        return obj


def render_document(tok, text: str) -> list[int]:
    """A pretraining document: <|bos|> then its text (a Transcript: its two open turns)."""
    if isinstance(text, Transcript):
        return [tok.special_id("<|bos|>"), tok.special_id("<|user_start|>"), *tok.encode(text.user),
                tok.special_id("<|user_end|>"), tok.special_id("<|assistant_start|>"),
                *tok.encode(text.assistant)]
    return [tok.special_id("<|bos|>"), *tok.encode(text)]


def render_chat_reference(
    tok, messages: list[Message], add_generation_prompt: bool = True
) -> list[int]:
    """tiktokenizer's chat layout: ``<|im_start|>role<|im_sep|>content<|im_end|>`` per message,
    then ``<|im_start|>assistant<|im_sep|>`` (where the model would start) unless told not to."""
    start, sep, end = (tok.special_id(s) for s in ("<|im_start|>", "<|im_sep|>", "<|im_end|>"))
    ids: list[int] = []
    for message in messages:
        role, content = _check(message)
        ids += [start, *tok.encode(role), sep, *tok.encode(content), end]
    if add_generation_prompt:
        ids += [start, *tok.encode("assistant"), sep]
    return ids


def has_chat_format(tok) -> str | None:
    """"deepdive" (our format), "im" (tiktokenizer's) or None (no chat tokens, e.g. gpt2)."""
    if all(s in tok.specials for s in SPECIAL_TOKENS):
        return "deepdive"
    if all(s in tok.specials for s in ("<|im_start|>", "<|im_sep|>", "<|im_end|>")):
        return "im"
    return None


def render_chat(tok, messages: list[Message]) -> list[int]:
    """A conversation in whichever chat format tok has (for display: Tokens pane, CLI)."""
    kind = has_chat_format(tok)
    if kind == "deepdive":
        return render_conversation(tok, messages)[0]
    if kind == "im":
        return render_chat_reference(tok, messages)
    raise ValueError(f"{tok.name} has no chat tokens; chat view needs a run's tokenizer, "
                     "cl100k_base or o200k_base")
