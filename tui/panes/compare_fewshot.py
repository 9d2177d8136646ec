"""The few-shot document that coaxes a base model into answering.

A base model is a document simulator: given a chat-formatted prompt it continues *a document*,
not a conversation. Give it instead a document that is a list of questions with their answers,
ending in our question and an open "A:", and the most likely continuation is an answer. The
examples are true facts of the run's world (the SFT conversations without labeler errors), so
the base model is asked nothing it could not have read during pretraining.
"""

from __future__ import annotations

HEADER = "Questions and answers.\n\n"
N_SHOTS = 4
END_MARKS = ("\n\nQ:", "\nQ:", "\n\n")  # where the model's answer ends and the next question starts


def fewshot_examples(world, n: int = N_SHOTS) -> list[tuple[str, str]]:
    """Short single-turn (question, answer) pairs drawn from the world's clean SFT data."""
    from engine.api import sft_conversations

    pairs: list[tuple[str, str]] = []
    seen_starts: set[str] = set()
    for conv in sft_conversations(world, labeler_error_rate=0.0, include_idk=False):
        turns = [m for m in conv if m["role"] != "system"]
        if len(turns) != 2 or turns[0]["role"] != "user" or turns[1]["role"] != "assistant":
            continue
        q, a = turns[0]["content"].strip(), turns[1]["content"].strip()
        start = " ".join(q.split()[:2])  # one example per kind of question reads as a list
        if "\n" in q or "\n" in a or len(a) > 80 or start in seen_starts:
            continue
        seen_starts.add(start)
        pairs.append((q, a))
        if len(pairs) == n:
            break
    return pairs


def fewshot_document(examples: list[tuple[str, str]], question: str) -> str:
    """``Q: … A: …`` pairs, then the question and an open ``A:`` for the model to fill."""
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in examples if q != question)
    return f"{HEADER}{shots}Q: {question.strip()}\nA:"


def fewshot_answer(text: str) -> tuple[str, bool]:
    """The answer part of a continuation and whether the model has finished it."""
    cut = min((i for i in (text.find(m) for m in END_MARKS) if i >= 0), default=-1)
    if cut < 0:
        return text.strip(), False
    return text[:cut].strip(), True
