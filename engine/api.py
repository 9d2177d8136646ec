"""The engine facade: everything a front end (the TUI, a future web page) may call.

Import from here, never from engine's rooms: ``from engine.api import list_runs, judge``.

- Runs: ``list_runs``, ``resolve_run``, ``checkpoints_root``, ``read_json``,
  ``is_run_active``, ``RunInfo``, ``STAGES`` (engine/run.py).
- Models: ``ModelClient`` (load a stage, ``stream``, ``stream_many``, ``generate_batch``),
  ``StreamRequest``, ``shared_client``, ``SampleSettings``, ``fit_prompt``, ``prepare_prompt``,
  ``CheckpointError`` (engine/model/).
- Tokens: ``get_encoding``, ``reference_encodings``, ``token_pieces``, ``SPECIAL_TOKENS``,
  ``has_chat_format``, ``render_chat``, ``render_prompt``, ``render_document``
  (engine/tokens/).
- The world and its tasks: ``build_world``, ``World``, ``sft_conversations``, ``ask_about``,
  ``Problem``, ``curated_prompts``, ``eval_problems`` (engine/data/).
- The judge: ``judge``, ``recognise``, ``Verdict`` (engine/data/judge.py).
- Evaluation: ``evaluate_run``, ``report_path``, ``token_budgets`` (engine/data/evals.py).
- Stats and figures: ``wilson``, ``tally_line``, ``pct``, ``fmt_num``.

Importing this module must stay cheap (the app's first frame waits for it): only small modules
are imported here (engine.run, engine.data.stats, engine.tokens.chat). Every other name is in
``_LAZY`` and loads on first use (PEP 562): torch for the sampler, tiktoken for tokenizers, the
world's tables, the model client (torch-free, but not needed before a pane samples). So
``from engine.api import judge`` imports engine.data.judge: write it inside the function that
needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.data.stats import pct as pct
from engine.data.stats import tally_line as tally_line
from engine.data.stats import wilson as wilson
from engine.run import STAGES as STAGES
from engine.run import RunInfo as RunInfo
from engine.run import checkpoints_root as checkpoints_root
from engine.run import is_run_active as is_run_active
from engine.run import list_runs as list_runs
from engine.run import read_json as read_json
from engine.run import resolve_run as resolve_run
from engine.tokens.chat import SPECIAL_TOKENS as SPECIAL_TOKENS
from engine.tokens.chat import has_chat_format as has_chat_format
from engine.tokens.chat import render_chat as render_chat
from engine.tokens.chat import render_document as render_document
from engine.tokens.chat import render_prompt as render_prompt

if TYPE_CHECKING:  # what _LAZY loads, for type checkers and import-linter
    from engine.data.evals import evaluate_run as evaluate_run
    from engine.data.evals import report_path as report_path
    from engine.data.evals import token_budgets as token_budgets
    from engine.data.judge import Verdict as Verdict
    from engine.data.judge import judge as judge
    from engine.data.judge import recognise as recognise
    from engine.data.tasks import Problem as Problem
    from engine.data.tasks import curated_prompts as curated_prompts
    from engine.data.tasks import eval_problems as eval_problems
    from engine.data.world import World as World
    from engine.data.world import build_world as build_world
    from engine.data.world import sft_conversations as sft_conversations
    from engine.model.checkpoint import CheckpointError as CheckpointError
    from engine.model.client import ModelClient as ModelClient
    from engine.model.client import StreamRequest as StreamRequest
    from engine.model.client import shared_client as shared_client
    from engine.model.sampler import SampleSettings as SampleSettings
    from engine.model.sampler import fit_prompt as fit_prompt
    from engine.model.sampler import prepare_prompt as prepare_prompt
    from engine.progress.state import fmt_num as fmt_num
    from engine.tokens.tokenizer import get_encoding as get_encoding
    from engine.tokens.tokenizer import reference_encodings as reference_encodings
    from engine.tokens.tokenizer import token_pieces as token_pieces

# name -> the module that defines it, imported on first use
_LAZY = {
    **dict.fromkeys(("evaluate_run", "report_path", "token_budgets"), "engine.data.evals"),
    **dict.fromkeys(("Verdict", "judge", "recognise"), "engine.data.judge"),
    **dict.fromkeys(("Problem", "curated_prompts", "eval_problems"), "engine.data.tasks"),
    **dict.fromkeys(("World", "build_world", "sft_conversations"), "engine.data.world"),
    "CheckpointError": "engine.model.checkpoint",
    **dict.fromkeys(("ModelClient", "StreamRequest", "shared_client"), "engine.model.client"),
    **dict.fromkeys(("SampleSettings", "fit_prompt", "prepare_prompt"), "engine.model.sampler"),
    "fmt_num": "engine.progress.state",
    **dict.fromkeys(("get_encoding", "reference_encodings", "token_pieces"),
                    "engine.tokens.tokenizer"),
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.api' has no attribute {name!r}")
    # not cached here: a test that patches the defining module (engine.data.judge.judge) is seen
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def ask_about(kind: str, name: str) -> str:
    """The template question of ``kind`` (a fact kind: capital, born, ...) about ``name``."""
    from engine.data import wordings

    return wordings.fill(wordings.template(kind), name=name)

