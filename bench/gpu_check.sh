#!/usr/bin/env bash
# One short check for a GPU box lent for a few minutes: a preset's model (PRESET, default
# `small`: 8 layers x 512, vocab 4096; `medium`: 12 x 768, vocab 8192) trained for STEPS steps,
# then KV-cache decoding, and ONE JSON object on the last line of stdout (tokens/s, MFU, peak
# memory, dtype, device, torch). Progress goes to stderr. Under ~4 minutes on an H200 with the
# defaults; COMPILE=1 also times torch.compile (the GPU presets train compiled).
#
#   bash bench/gpu_check.sh                                   # cuda if torch sees one, else cpu
#   PRESET=medium COMPILE=1 bash bench/gpu_check.sh           # the larger preset, compiled too
#   DEVICE=cpu STEPS=2 SHAPES=4x64 CONTEXT=64 bash bench/gpu_check.sh   # smoke check on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PRESET=${PRESET:-small}

if [[ -z "${DEVICE:-}" ]]; then
  [[ $("$PY" -c 'import torch;print(torch.cuda.is_available())') == True ]] && DEVICE=cuda || DEVICE=cpu
fi
# The CPU defaults only prove the script runs; the cuda ones are the preset's own pretraining
# pass (small: 64 x 512 tokens; medium: its micro-batch, 32 x 1024) and its full context.
if [[ $DEVICE == cuda* && $PRESET == medium ]]; then
  STEPS=${STEPS:-30}; SHAPES=${SHAPES:-32x1024}; CONTEXT=${CONTEXT:-1024}
elif [[ $DEVICE == cuda* ]]; then
  STEPS=${STEPS:-30}; SHAPES=${SHAPES:-64x512}; CONTEXT=${CONTEXT:-512}
else
  STEPS=${STEPS:-2}; SHAPES=${SHAPES:-4x64}; CONTEXT=${CONTEXT:-64}
fi
# Each bench gets its own limit, so one that hangs still leaves the other's figures.
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-150}
DECODE_TIMEOUT=${DECODE_TIMEOUT:-75}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs one bench under a timeout; its output is shown on stderr and its last line kept as JSON.
# A failure (or timeout) becomes {"error": ...} instead of ending the script.
bench() {
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" >&2
  if timeout "$limit" "$PY" "$@" | tee "$tmp/$name.out" >&2; then
    tail -n 1 "$tmp/$name.out" > "$tmp/$name.json"
  else
    echo "{\"error\": \"exit $? (124 = timed out after ${limit}s)\"}" > "$tmp/$name.json"
  fi
}

bench train "$TRAIN_TIMEOUT" bench/train_throughput.py --preset "$PRESET" --device "$DEVICE" \
  --shapes "$SHAPES" --steps "$STEPS" ${COMPILE:+--compile}
# --no-hf: the GPU box need not have transformers, and its comparison is a CPU question.
bench decode "$DECODE_TIMEOUT" bench/decode.py --preset "$PRESET" --device "$DEVICE" \
  --context "$CONTEXT" --repeats 2 --no-hf

"$PY" - "$tmp/train.json" "$tmp/decode.json" "$DEVICE" "$STEPS" "$PRESET" <<'EOF'
import json, sys

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:  # the bench's last line was not JSON (it crashed mid-print)
        return {"error": f"no JSON: {e}"}

train, decode = load(sys.argv[1]), load(sys.argv[2])
ok = [r for r in train.get("results", []) if "tok_s" in r]
best = max(ok, key=lambda r: r["mfu"]) if ok else {}
cache = decode.get("cache", {})
either = train if "device_name" in train else decode
summary = {
    "check": "gpu_check", "preset": sys.argv[5], "device": sys.argv[3],
    "device_name": either.get("device_name"), "torch": either.get("torch"),
    "steps": int(sys.argv[4]),
    "train_dtype": train.get("dtype"), "train_shape": train.get("best_shape"),
    "train_tok_s": best.get("tok_s"), "mfu": best.get("mfu"),
    "train_peak_mem_bytes": max((r["peak_mem_bytes"] for r in ok), default=None),
    "decode_dtype": decode.get("dtype"), "decode_context": cache.get("config", {}).get("block_size"),
    "decode_tok_s": cache.get("kv_cache_tok_s"), "decode_batch16_tok_s": cache.get("batch16_tok_s"),
    "decode_peak_mem_bytes": decode.get("peak_mem_bytes"),
    # allocator peak on cuda; on cpu the process's peak resident set (interpreter + torch too)
    "peak_mem_kind": either.get("peak_mem_kind"),
    "errors": {k: v["error"] for k, v in (("train", train), ("decode", decode)) if "error" in v},
    "train": train, "decode": decode,
}
print(json.dumps(summary))
sys.exit(1 if summary["errors"] else 0)
EOF
