"""Bad input soak: random nasty strings into the tokenizers and the chat renderer.

    python bench/badinput.py [--n 2000] [--seed 0]

Each string joins a few fragments drawn (seeded ``random``) from families of nastiness: lone
surrogates, NUL and other controls, bidi marks and overrides (U+200F, U+202E), stacks of
combining marks, emoji ZWJ sequences and flags, special-token strings (ours, tiktoken's,
tiktokenizer's, broken ones), odd whitespace, long runs, and any code point at all.

Each string goes to the run's BPE (checkpoints/tiny/tokenizer.json; a tiny one trained here if
that is missing) and every offline reference encoding: encode, decode, display pieces, and the
chat renderer with the string as the user's message. A crash is any exception but a documented
ValueError (UnicodeError is no excuse: it is the crash this looks for). A wrong answer raises
too, so it counts as a crash: decode must give the text back (a lone surrogate as the U+FFFD the
encoders put in its place), and user text must never yield a special-token id.

The last line printed is one JSON object: bad_inputs_tried, crashes, crash_examples.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the engine is beside bench/
    sys.path.insert(0, str(ROOT))

SPECIAL_STRINGS = [
    "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
    "<|system_start|>", "<|system_end|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|im_sep|>", "<|fim_prefix|>", "<|endofprompt|>", "<|", "|>", "<|bos", "<|<|bos|>|>",
]
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
CONTROLS = "".join(map(chr, range(32))) + "\x7f\x85\u2028\u2029"
SPACES = " \t\r\n\u00a0\u1680\u2000\u200b\u3000\ufeff"
EMOJI = [
    "👩\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "👍🏽", "🇰🇷", "🇺🇳", "❤\ufe0f",
    "🧑\u200d💻", "\U0001f9d1\U0001f3ff\u200d\U0001f91d\u200d\U0001f9d1\U0001f3fb",
]
SCRIPTS = ["안녕하세요", "世界", "مرحبا", "नमस्ते", "Ünïcödé", "Ω≈ç√∫", "ﷺ", "𒀀𒀁"]


def _fragment(rng: random.Random) -> str:
    """One piece of nastiness."""
    family = rng.randrange(10)
    if family == 0:  # lone surrogates: not encodable as UTF-8 at all
        return "".join(chr(rng.randint(0xD800, 0xDFFF)) for _ in range(rng.randint(1, 3)))
    if family == 1:
        return "".join(rng.choice(CONTROLS) for _ in range(rng.randint(1, 4)))
    if family == 2:
        return rng.choice(BIDI) + rng.choice(SCRIPTS) + rng.choice(BIDI)
    if family == 3:  # a base letter under a pile of combining marks
        return rng.choice("aeoẞ字") + "".join(chr(rng.randint(0x300, 0x36F))
                                             for _ in range(rng.randint(1, 40)))
    if family == 4:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
    if family == 5:
        return "".join(rng.choice(SPECIAL_STRINGS) for _ in range(rng.randint(1, 3)))
    if family == 6:
        return "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 6)))
    if family == 7:  # long runs: one character (or a digit, or an emoji) thousands of times
        return rng.choice(["a", " ", "1", "\n", "💜", "<|"]) * rng.randint(100, 5000)
    if family == 8:
        return rng.choice(SCRIPTS) + str(rng.randint(0, 10**12))
    # any code point at all, surrogates, private use and noncharacters included
    return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 8)))


def nasty_string(rng: random.Random) -> str:
    return "".join(_fragment(rng) for _ in range(rng.randint(1, 6)))


def as_encoded(text: str) -> str:
    """What an encoder tokenizes: tiktoken's repair of text with no UTF-8 form (surrogates
    spelling a pair join into that character, a lone one becomes U+FFFD)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class WrongAnswer(AssertionError):
    """No exception, but not what a user must get: counted as a crash."""


def check_text(tok, text: str) -> None:
    """Encode, decode, display and chat-render one string with one tokenizer."""
    from engine.api import render_chat, token_pieces

    ids = tok.encode(text)
    if any(tok.is_special(i) for i in ids):
        raise WrongAnswer("user text became a special-token id")
    if tok.decode(ids) != as_encoded(text):
        raise WrongAnswer("decode(encode(text)) is not the text")
    if "".join(p.text for p in token_pieces(tok, ids)) != as_encoded(text):
        raise WrongAnswer("the display pieces do not spell the text")
    chat = render_chat(tok, [{"role": "user", "content": text}])
    layout = render_chat(tok, [{"role": "user", "content": ""}])
    if [i for i in chat if tok.is_special(i)] != [i for i in layout if tok.is_special(i)]:
        raise WrongAnswer("the chat has special tokens the layout does not put there")


def tokenizers() -> list:
    """The run's BPE (the tiny run's, else one trained here) and every offline reference."""
    from engine.api import get_encoding, reference_encodings, train_bpe

    path = ROOT / "checkpoints" / "tiny" / "tokenizer.json"
    if path.is_file():
        ours = get_encoding(path)
    else:
        ours = train_bpe(["Hello world. 안녕하세요 💜 12 + 30 = 42.\n"] * 20 + SCRIPTS, 400)
    return [ours] + [get_encoding(name) for name in reference_encodings()]


def first_crash(toks: list, text: str) -> str | None:
    """The first tokenizer whose checks raise anything but a documented ValueError, and why."""
    for tok in toks:
        try:
            check_text(tok, text)
        except UnicodeError as e:  # a ValueError subclass, but never a documented answer
            return f"{tok.name}: {type(e).__name__}: {e}"
        except ValueError:
            continue
        except Exception as e:
            return f"{tok.name}: {type(e).__name__}: {e}"
    return None


def run_bad_inputs(n: int, seed: int) -> dict:
    """Feed n seeded nasty strings to every tokenizer; count the strings that crash any."""
    rng = random.Random(seed)
    toks = tokenizers()
    crashes, examples = 0, []
    for _ in range(n):
        text = nasty_string(rng)
        why = first_crash(toks, text)
        if why is not None:
            crashes += 1
            if len(examples) < 5:
                examples.append(f"{text[:120]!r} -> {why[:200]}")
    return {"bad_inputs_tried": n, "crashes": crashes, "crash_examples": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(run_bad_inputs(args.n, args.seed)))


if __name__ == "__main__":
    main()
