"""The engine facade: everything a front end (the app, the CLI, a future web page) may call.

The panes and the CLI import from here, never from engine's rooms (import-linter checks):
``from engine.api import list_runs, judge``.

- Runs and the run-folder contract: ``list_runs``, ``resolve_run``, ``checkpoints_root``,
  ``read_json`` (``RunFileError``), ``is_run_active``, ``RunInfo``, ``RunFolder``,
  ``MODEL_FOLDERS``, ``RLHF_FOLDERS``,
  ``REPORT_COLUMNS``, ``REPORT_STAGES``, ``REPORT_FILE``, ``RUN_FILE``, ``MODEL_FILE``,
  ``LOCK_FILE``, ``TRAIN_LOG_FILE`` (engine/run.py).
- Following a run: ``RunState``, ``StageState``, ``RunWatch`` and the display strings
  ``fmt_num``, ``num``, ``fmt_bytes``, ``fmt_duration``, ``stage_status``, ``stats_parts``
  (engine/progress/); ``get_preset``, ``estimate_run_s`` (engine/train/); ``deepdive_command``
  (how to start a trainer or a served app as a child process).
- Models: ``ModelClient`` (load a stage, ``stream``, ``stream_many``, ``generate_batch``),
  ``StreamRequest``, ``shared_client``, ``SampleSettings``, ``fit_prompt``, ``prepare_prompt``,
  ``CheckpointError`` (engine/model/).
- Tokens: ``get_encoding``, ``reference_encodings``, ``token_pieces``, ``SPECIAL_TOKENS``,
  ``has_chat_format``, ``render_chat``, ``render_prompt``, ``render_document``
  (engine/tokens/).
- The world and its tasks: ``build_world``, ``World``, ``sft_conversations``, ``ask_about``,
  ``Problem``, ``curated_prompts``, ``eval_problems`` (engine/data/).
- The judge: ``judge``, ``recognise``, ``Verdict`` (engine/data/judge.py).
- A user's data files: ``check_data``, ``DataCheck``, ``DATA_KINDS``, ``DataFileError``
  (engine/data/check.py, files.py); public datasets: ``DATASETS``, ``fetch_dataset``,
  ``UnknownDatasetError`` (engine/data/fetch.py).
- Evaluation: ``evaluate_run``, ``token_budgets`` (engine/data/evals.py).
- Training and importing (the CLI's verbs): ``train``, ``parse_stages``, ``parse_rl_families``,
  ``PipelineError``,
  ``TrainingError``, ``TrainingStopped``, ``install_stop_handlers``, ``env_dist_info``
  (engine/train/); ``train_bpe``, ``import_gpt2``, ``download_gpt2`` and their errors;
  ``load_run_model``, ``stream``, ``pick_device``.
- Stats: ``wilson``, ``tally_line``, ``pct``, ``signed``, ``claim_figure``, ``GOLD`` (the unit
  of a figure in the hidden raters' score) (engine/data/stats.py).

Importing this module must stay cheap (the app's first frame waits for it): only engine.run
(the run-folder contract, standard library only) is imported here. Every other name is in
``_LAZY`` and loads on first use (PEP 562): torch for the sampler, tiktoken for tokenizers, the
world's tables, the model client (torch-free, but not needed before a pane samples). So
``from engine.api import judge`` imports engine.data.judge: import heavy names (torch,
tiktoken, the world) inside the function that needs them; light ones (run state, display
strings) may be imported at the top of a pane module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.run import EVENTS_FILE as EVENTS_FILE
from engine.run import LOCK_FILE as LOCK_FILE
from engine.run import META_FILE as META_FILE
from engine.run import MODEL_FILE as MODEL_FILE
from engine.run import MODEL_FOLDERS as MODEL_FOLDERS
from engine.run import REPORT_COLUMNS as REPORT_COLUMNS
from engine.run import REPORT_FILE as REPORT_FILE
from engine.run import REPORT_STAGES as REPORT_STAGES
from engine.run import RLHF_FOLDERS as RLHF_FOLDERS
from engine.run import RUN_FILE as RUN_FILE
from engine.run import TOKENIZER_FILE as TOKENIZER_FILE
from engine.run import TRAIN_LOG_FILE as TRAIN_LOG_FILE
from engine.run import RunFileError as RunFileError
from engine.run import RunFolder as RunFolder
from engine.run import RunInfo as RunInfo
from engine.run import RunLockedError as RunLockedError
from engine.run import checkpoints_root as checkpoints_root
from engine.run import is_run_active as is_run_active
from engine.run import list_runs as list_runs
from engine.run import read_json as read_json
from engine.run import resolve_run as resolve_run

if TYPE_CHECKING:  # what _LAZY loads, for type checkers
    from engine.data.check import DATA_KINDS as DATA_KINDS
    from engine.data.check import DataCheck as DataCheck
    from engine.data.check import check_data as check_data
    from engine.data.evals import evaluate_run as evaluate_run
    from engine.data.evals import token_budgets as token_budgets
    from engine.data.fetch import DATASETS as DATASETS
    from engine.data.fetch import UnknownDatasetError as UnknownDatasetError
    from engine.data.fetch import fetch_dataset as fetch_dataset
    from engine.data.files import DataFileError as DataFileError
    from engine.data.judge import Verdict as Verdict
    from engine.data.judge import judge as judge
    from engine.data.judge import recognise as recognise
    from engine.data.stats import GOLD as GOLD
    from engine.data.stats import claim_figure as claim_figure
    from engine.data.stats import pct as pct
    from engine.data.stats import signed as signed
    from engine.data.stats import tally_line as tally_line
    from engine.data.stats import wilson as wilson
    from engine.data.tasks import Problem as Problem
    from engine.data.tasks import curated_prompts as curated_prompts
    from engine.data.tasks import eval_problems as eval_problems
    from engine.data.world import World as World
    from engine.data.world import build_world as build_world
    from engine.data.world import sft_conversations as sft_conversations
    from engine.model.checkpoint import CheckpointError as CheckpointError
    from engine.model.checkpoint import load_run_model as load_run_model
    from engine.model.client import ModelClient as ModelClient
    from engine.model.client import StreamRequest as StreamRequest
    from engine.model.client import shared_client as shared_client
    from engine.model.device import pick_device as pick_device
    from engine.model.gpt2 import DownloadError as DownloadError
    from engine.model.gpt2 import GPT2ImportError as GPT2ImportError
    from engine.model.gpt2 import download_gpt2 as download_gpt2
    from engine.model.gpt2 import import_gpt2 as import_gpt2
    from engine.model.sampler import SampleSettings as SampleSettings
    from engine.model.sampler import fit_prompt as fit_prompt
    from engine.model.sampler import prepare_prompt as prepare_prompt
    from engine.model.sampler import stream as stream
    from engine.progress.state import RunState as RunState
    from engine.progress.state import StageState as StageState
    from engine.progress.text import eta_text as eta_text
    from engine.progress.text import fmt_bytes as fmt_bytes
    from engine.progress.text import fmt_duration as fmt_duration
    from engine.progress.text import fmt_num as fmt_num
    from engine.progress.text import num as num
    from engine.progress.text import run_status as run_status
    from engine.progress.text import shown_stage as shown_stage
    from engine.progress.text import stage_done_line as stage_done_line
    from engine.progress.text import stage_status as stage_status
    from engine.progress.text import stats_parts as stats_parts
    from engine.progress.watch import RunWatch as RunWatch
    from engine.tokens.chat import SPECIAL_TOKENS as SPECIAL_TOKENS
    from engine.tokens.chat import has_chat_format as has_chat_format
    from engine.tokens.chat import render_chat as render_chat
    from engine.tokens.chat import render_document as render_document
    from engine.tokens.chat import render_prompt as render_prompt
    from engine.tokens.reference import ReferenceDataError as ReferenceDataError
    from engine.tokens.tokenizer import Tokenizer as Tokenizer
    from engine.tokens.tokenizer import TokenizerFileError as TokenizerFileError
    from engine.tokens.tokenizer import UnknownEncodingError as UnknownEncodingError
    from engine.tokens.tokenizer import get_encoding as get_encoding
    from engine.tokens.tokenizer import reference_encodings as reference_encodings
    from engine.tokens.tokenizer import token_pieces as token_pieces
    from engine.tokens.tokenizer import train_bpe as train_bpe
    from engine.train.distributed import env_dist_info as env_dist_info
    from engine.train.estimate import estimate_run_s as estimate_run_s
    from engine.train.loop import TrainingError as TrainingError
    from engine.train.loop import TrainingStopped as TrainingStopped
    from engine.train.loop import install_stop_handlers as install_stop_handlers
    from engine.train.pipeline import PipelineError as PipelineError
    from engine.train.pipeline import parse_rl_families as parse_rl_families
    from engine.train.pipeline import parse_stages as parse_stages
    from engine.train.pipeline import train as train
    from engine.train.presets import get_preset as get_preset

# name -> the module that defines it, imported on first use
_LAZY = {
    **dict.fromkeys(("GOLD", "claim_figure", "pct", "signed", "tally_line", "wilson"),
                    "engine.data.stats"),
    **dict.fromkeys(("SPECIAL_TOKENS", "has_chat_format", "render_chat", "render_document",
                     "render_prompt"), "engine.tokens.chat"),
    **dict.fromkeys(("evaluate_run", "token_budgets"), "engine.data.evals"),
    **dict.fromkeys(("DATA_KINDS", "DataCheck", "check_data"), "engine.data.check"),
    "DataFileError": "engine.data.files",
    **dict.fromkeys(("DATASETS", "UnknownDatasetError", "fetch_dataset"), "engine.data.fetch"),
    **dict.fromkeys(("Verdict", "judge", "recognise"), "engine.data.judge"),
    **dict.fromkeys(("Problem", "curated_prompts", "eval_problems"), "engine.data.tasks"),
    **dict.fromkeys(("World", "build_world", "sft_conversations"), "engine.data.world"),
    **dict.fromkeys(("CheckpointError", "load_run_model"), "engine.model.checkpoint"),
    **dict.fromkeys(("ModelClient", "StreamRequest", "shared_client"), "engine.model.client"),
    "pick_device": "engine.model.device",
    **dict.fromkeys(("DownloadError", "GPT2ImportError", "download_gpt2", "import_gpt2"),
                    "engine.model.gpt2"),
    **dict.fromkeys(("SampleSettings", "fit_prompt", "prepare_prompt", "stream"),
                    "engine.model.sampler"),
    **dict.fromkeys(("RunState", "StageState"), "engine.progress.state"),
    **dict.fromkeys(("eta_text", "fmt_bytes", "fmt_duration", "fmt_num", "num", "run_status",
                     "shown_stage", "stage_done_line", "stage_status", "stats_parts"),
                    "engine.progress.text"),
    "RunWatch": "engine.progress.watch",
    "ReferenceDataError": "engine.tokens.reference",
    **dict.fromkeys(("Tokenizer", "TokenizerFileError", "UnknownEncodingError", "get_encoding",
                     "reference_encodings", "token_pieces", "train_bpe"),
                    "engine.tokens.tokenizer"),
    "env_dist_info": "engine.train.distributed",
    "estimate_run_s": "engine.train.estimate",
    **dict.fromkeys(("TrainingError", "TrainingStopped", "install_stop_handlers"),
                    "engine.train.loop"),
    **dict.fromkeys(("PipelineError", "parse_rl_families", "parse_stages", "train"),
                    "engine.train.pipeline"),
    "get_preset": "engine.train.presets",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.api' has no attribute {name!r}")
    # not cached here: a test that patches the defining module (engine.data.judge.judge) is seen
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def deepdive_command() -> list[str]:
    """How to start the ``deepdive`` CLI in a child process (a trainer, a served app): the
    script beside this Python, else the one on PATH, else ``python -m deepdive``."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name("deepdive")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("deepdive")
    return [found] if found else [sys.executable, "-m", "deepdive"]


def ask_about(kind: str, name: str) -> str:
    """The template question of ``kind`` (a fact kind: capital, born, ...) about ``name``."""
    from engine.data import wordings

    return wordings.fill(wordings.template(kind), name=name)

