"""Presets: every number a run needs, in one place, by name.

- ``micro``: a whole run in seconds, for tests (the models learn little; the plumbing is the point).
- ``tiny``: the 2-core laptop default, the whole pipeline in minutes (its timings:
  docs/measurements.md).
- ``small``: a GPU-sized run (bigger model, longer stages, more RL samples).
- ``medium``: the larger GPU run (GPT-2-small width, 1,024-token windows, torch.compile), sized
  for a user's own corpus (``--pretrain-data``): the world alone is far too little text for it.

A preset is plain data; ``deepdive train`` writes it into ``run.json``: a run says how it was
made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from engine.data.tasks import RL_FAMILIES


@dataclass
class StageConfig:
    """One gradient-descent stage (pretrain, sft, control): schedule and bookkeeping."""

    steps: int
    batch_size: int  # global batch (rows); DDP ranks each take batch_size / world_size rows
    seq_len: int  # pretraining window; SFT pads to the longest conversation up to this
    lr: float
    warmup: int = 0  # linear warmup steps
    decay: str = "cosine"  # "cosine" | "linear" (to min_lr_frac * lr at the last step)
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 10  # a `step` event every this many steps (and the first and last)
    eval_every: int = 100  # validation loss (or held-out pass@1 for RL)
    sample_every: int = 200  # a `sample` event from the fixed prompt
    ckpt_every: int = 200  # a resumable checkpoint (model + optimizer)
    # At most this many rows in one forward/backward pass on one process; a rank's rows are cut
    # into equal parts whose gradients add up (gradient accumulation). It changes memory, not
    # the update (up to float rounding): None is one pass (engine/train/loop.py).
    micro_batch: int | None = None


@dataclass
class RLConfig(StageConfig):
    """GRPO-style RL: ``batch_size`` problems per step, ``group`` samples of each."""

    group: int = 8
    temperature: float = 1.0
    top_k: int | None = 50
    max_tokens: int = 64  # longest response sampled
    n_train_problems: int = 2000
    n_eval_problems: int = 64  # held-out problems for the periodic eval
    # The verifiable families RL practises on; the periodic eval and the report card read
    # every family, so one left out here measures transfer.
    families: tuple[str, ...] = RL_FAMILIES

    def __post_init__(self):
        self.families = tuple(self.families)  # run.json gives a list back
        bad = [f for f in self.families if f not in RL_FAMILIES]
        if bad or not self.families:
            raise ValueError(f"RL families {', '.join(bad) or '(none given)'}: choose from "
                             f"{', '.join(RL_FAMILIES)}")


@dataclass
class RewardConfig(StageConfig):
    """The reward model: Bradley–Terry on rater-labelled pairs of SFT samples."""

    samples_per_prompt: int = 8  # SFT samples per train task (temperature 1)
    pairs_per_prompt: int = 12  # rater-labelled pairs drawn among them
    eval_samples_per_prompt: int = 4  # on dev and test tasks, for held-out pair accuracy
    max_tokens: int = 96  # longest reply sampled


@dataclass
class RLHFConfig(RLConfig):
    """RL against the reward model, with a KL penalty to the SFT model (``kl_coef`` per nat of
    a reply's log-probability ratio); ``eval_every`` also paces the gold/proxy/KL curve."""

    kl_coef: float = 0.02

    def __post_init__(self):
        super().__post_init__()
        if self.group < 2:  # advantages are relative to a reply's siblings
            raise ValueError(f"RLHF needs a group of at least 2 replies a prompt, not {self.group}")


@dataclass
class Preset:
    name: str
    vocab_size: int
    model: dict  # GPTConfig fields other than vocab_size
    pretrain: StageConfig
    sft: StageConfig
    rl: RLConfig
    labeler_error_rate: float = 0.3  # the simulated SFT labelers' slip rate (engine/data/world.py)
    val_frac: float = 0.05  # share of documents / conversations held back for the val loss
    eval_n_per_family: int = 100  # problems per task family in the final report
    include_idk: bool = True  # SFT data teaches "I don't know" about people nowhere in the world
    sft_doc_frac: float = 0.0  # share of SFT rows that are documents about train entities
    probe_samples: int = 4  # knowledge probe before SFT (engine/train/probe.py); 0: none
    sft_untrained_names: bool = False  # SFT leaves the world's name-token rows untrained (sft.py)
    # SFT trains on the names its replies copy from the question (sft.py's copied_names says
    # when that helps); False: those tokens are masked, as runs made before 2026-12-05 did
    sft_learn_copies: bool = False
    # Share of SFT's fact, sum and "I don't know" questions wrapped in polite words ("Hi! ...",
    # "... Thanks!"; engine/data/wordings.py politely); 0: none, as runs before 2026-12-05
    sft_polite_share: float = 0.0
    # The share of SFT's own weights kept at its end, the rest the base model's (WiSE-FT,
    # engine/train/merge.py; the control ends the same way); 1.0: SFT's weights as trained.
    sft_merge: float = 1.0
    control: bool = True  # run the extra-SFT control beside RL
    open_sft_rows: int = 0  # SFT chats on the unverifiable tasks (engine/data/open_tasks.py)
    reward: RewardConfig | None = None  # the reward model stage; None: no reward, no rlhf
    rlhf: RLHFConfig | None = None  # RL against the reward model; None: no rlhf stage
    measure_mfu: bool = True  # time a matmul once to report MFU (off where seconds matter)
    compile: bool = False  # pretraining's model through torch.compile (GPU presets; pipeline.py)
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        if not 0.0 <= self.sft_polite_share <= 1.0:
            raise ValueError(f"sft_polite_share is a share of SFT's questions, in [0, 1], not "
                             f"{self.sft_polite_share}")
        if not 0.0 < self.sft_merge <= 1.0:
            raise ValueError(f"sft_merge is the share of SFT's weights kept, in (0, 1], not "
                             f"{self.sft_merge}")

    def to_dict(self) -> dict:
        return asdict(self)


def _micro() -> Preset:
    return Preset(
        name="micro",
        vocab_size=320,
        model=dict(block_size=128, n_layer=1, n_head=2, n_embd=32),
        pretrain=StageConfig(steps=30, batch_size=8, seq_len=64, lr=3e-3, warmup=3,
                             log_every=5, eval_every=15, sample_every=15, ckpt_every=10),
        sft=StageConfig(steps=15, batch_size=8, seq_len=128, lr=2e-3, warmup=2,
                        log_every=5, eval_every=15, sample_every=15, ckpt_every=10),
        rl=RLConfig(steps=3, batch_size=2, seq_len=128, lr=5e-4, warmup=0, decay="linear",
                    min_lr_frac=0.0, weight_decay=0.0, group=3, max_tokens=12,
                    n_train_problems=20, n_eval_problems=4,
                    log_every=1, eval_every=3, sample_every=3, ckpt_every=2),
        eval_n_per_family=3,
        measure_mfu=False,
        open_sft_rows=20,
        reward=RewardConfig(steps=4, batch_size=8, seq_len=128, lr=1e-3, log_every=2,
                            eval_every=4, sample_every=4, ckpt_every=2, samples_per_prompt=3,
                            pairs_per_prompt=2, eval_samples_per_prompt=2, max_tokens=12),
        rlhf=RLHFConfig(steps=4, batch_size=2, seq_len=128, lr=5e-4, decay="linear",
                        min_lr_frac=1.0, weight_decay=0.0, group=3, max_tokens=12,
                        log_every=1, eval_every=2, sample_every=4, ckpt_every=2),
    )


def _tiny() -> Preset:
    # What was tuned on which split is recorded in notes (and shown on the report card);
    # docs/measurements.md has the figures and commands. The report card reads the test split.
    return Preset(
        name="tiny",
        vocab_size=1024,
        model=dict(block_size=256, n_layer=4, n_head=4, n_embd=128),
        pretrain=StageConfig(steps=500, batch_size=32, seq_len=128, lr=3e-3, warmup=30,
                             log_every=10, eval_every=100, sample_every=100, ckpt_every=100),
        # Enough SFT steps that worked sums are imitated well enough for RL to find rewards.
        sft=StageConfig(steps=400, batch_size=32, seq_len=256, lr=1e-3, warmup=20,
                        log_every=10, eval_every=100, sample_every=100, ckpt_every=100),
        # RL's lr is far below SFT's: Adam's first steps move every weight by ~lr, and most of
        # a small batch's gradient is noise, so a large lr collapses the policy in a step.
        # max_tokens covers the longest worked answer: a cut-off answer scores 0 however right
        # its work was.
        rl=RLConfig(steps=40, batch_size=8, seq_len=256, lr=5e-5, warmup=0, decay="linear",
                    min_lr_frac=0.0, weight_decay=0.0, group=8, max_tokens=120,
                    log_every=1, eval_every=10, sample_every=10, ckpt_every=10,
                    # Sums only (chosen on dev, docs/measurements.md): every step practises
                    # the family RL is scored on; letter counts and decimals, never practised,
                    # are the transfer table's left-out families
                    families=("arith",)),
        # Labelers who drop most carries: a greedy SFT model imitates the majority habit, and
        # only the exact verifier can teach RL to carry (with careful labelers, more imitation
        # beats RL and the lecture's point cannot be seen).
        labeler_error_rate=0.55,
        # No rehearsal: with the names SFT copies masked (engine/train/sft.py), documents about
        # train entities only taught their names again, and held-out answers fell (2026-12-02;
        # not measured again since the copies are learnt).
        sft_doc_frac=0.0,
        # Names' embedding rows untrained in SFT, the names replies copy trained on
        # (engine/train/sft.py says why; chosen on dev, docs/measurements.md).
        sft_untrained_names=True,
        sft_learn_copies=True,
        # A quarter of SFT's questions wrapped in polite words: the chat model then answers
        # wordings it never saw far more often (chosen on dev, docs/measurements.md).
        sft_polite_share=0.25,
        # SFT's weights 90% of the way from the base model's (chosen on dev, 2026-12-05,
        # docs/measurements.md): held-out facts SFT wore away come back in part; below it,
        # "I don't know" about people nowhere in the world starts to go.
        sft_merge=0.9,
        eval_n_per_family=100,
        **_tiny_rlhf(),
        notes={"tuned_on": "dev (the knowledge recipe and SFT, 2026-12-02); the labeler error "
                           "rate, SFT steps and RL settings were kept from before the split "
                           "existed, when they were chosen on a held-out bucket that overlaps "
                           "today's test keys; the reward model's pairs and RLHF's learning "
                           "rate and KL coefficient on dev (2026-12-05); the SFT merge "
                           "with the base, learning copied names and the polite wrappers "
                           "on dev (2026-12-05); RL on sums only and RLHF's warmup, on dev "
                           "(2026-12-06)"},
    )


def _tiny_rlhf() -> dict:
    """The tiny preset's unverifiable tasks: SFT chats, the reward model, and RLHF run long
    enough (as many steps as RL) to show what over-optimising a learnt reward does."""
    return dict(
        open_sft_rows=400,
        reward=RewardConfig(steps=150, batch_size=32, seq_len=256, lr=1e-4, warmup=10,
                            weight_decay=0.0, log_every=10, eval_every=50, sample_every=50,
                            ckpt_every=50, samples_per_prompt=8, pairs_per_prompt=28,
                            eval_samples_per_prompt=6, max_tokens=96),
        # A warmup: at the full lr the first step already moves the policy past the reward
        # model's little competence, so gold only falls; rising to it gives the rise a chance.
        rlhf=RLHFConfig(steps=40, batch_size=8, seq_len=256, lr=3e-4, warmup=20,
                        decay="linear", min_lr_frac=1.0, weight_decay=0.0, group=4,
                        max_tokens=96, kl_coef=0.005, log_every=1, eval_every=2,
                        sample_every=10, ckpt_every=10),
    )


def _small() -> Preset:
    return Preset(
        name="small",
        vocab_size=4096,
        model=dict(block_size=512, n_layer=8, n_head=8, n_embd=512),
        pretrain=StageConfig(steps=5000, batch_size=64, seq_len=512, lr=1e-3, warmup=200,
                             log_every=20, eval_every=500, sample_every=500, ckpt_every=500),
        sft=StageConfig(steps=1500, batch_size=64, seq_len=512, lr=3e-4, warmup=50,
                        log_every=20, eval_every=250, sample_every=250, ckpt_every=250),
        rl=RLConfig(steps=200, batch_size=16, seq_len=512, lr=2e-5, warmup=0, decay="linear",
                    min_lr_frac=0.0, weight_decay=0.0, group=16, max_tokens=128,
                    n_train_problems=10000, n_eval_problems=256,
                    log_every=1, eval_every=50, sample_every=25, ckpt_every=25),
        eval_n_per_family=400,
        compile=True,
    )


def _medium() -> Preset:
    # GPT-2 small's width and depth with head size 128 (what flash attention runs fastest) and
    # 65k-token global batches; micro_batch caps the rows a GPU holds at once, so one GPU
    # accumulates what eight take in one pass each.
    return Preset(
        name="medium",
        vocab_size=8192,
        model=dict(block_size=1024, n_layer=12, n_head=6, n_embd=768),
        pretrain=StageConfig(steps=5000, batch_size=64, seq_len=1024, lr=6e-4, warmup=200,
                             micro_batch=32, log_every=20, eval_every=500, sample_every=500,
                             ckpt_every=500),
        sft=StageConfig(steps=1500, batch_size=64, seq_len=1024, lr=1e-4, warmup=50,
                        micro_batch=16, log_every=20, eval_every=250, sample_every=250,
                        ckpt_every=250),
        rl=RLConfig(steps=300, batch_size=16, seq_len=1024, lr=1e-5, warmup=0, decay="linear",
                    min_lr_frac=0.0, weight_decay=0.0, group=16, max_tokens=256,
                    n_train_problems=10000, n_eval_problems=256,
                    log_every=1, eval_every=50, sample_every=25, ckpt_every=25),
        eval_n_per_family=400,
        compile=True,
    )


PRESETS = {"micro": _micro, "tiny": _tiny, "small": _small, "medium": _medium}


def get_preset(name: str) -> Preset:
    """A fresh copy of the named preset; an unknown name is a ValueError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def preset_from_dict(d: dict) -> Preset:
    """The preset recorded in run.json (--resume trains with what the run started with); a
    record that does not make one (missing or unknown fields, wrong shapes) is a ValueError."""
    try:
        d = dict(d)
        return Preset(**{**d, "pretrain": StageConfig(**d["pretrain"]),
                         "sft": StageConfig(**d["sft"]), "rl": RLConfig(**d["rl"]),
                         "reward": _maybe(RewardConfig, d.get("reward")),
                         "rlhf": _maybe(RLHFConfig, d.get("rlhf"))})
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"the recorded preset_config does not make a preset ({e!r})") from None


def _maybe(kind, fields: dict | None):
    return None if fields is None else kind(**fields)


__all__ = ["Preset", "RLConfig", "RLHFConfig", "RewardConfig", "StageConfig", "get_preset",
           "preset_from_dict", "replace"]
