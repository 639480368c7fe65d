"""Build fleets of distinct BERT-family models into a store: random weights seeded by the model name.

Tracing is the slow step, so each architecture is traced once; every model then gets its own seeded weights
written into that traced graph and saved with ``torch.jit.save``. Reruns skip models whose config records the
same architecture, so a store grows incrementally.

With a ``precision`` each model is built as that optimized artifact (model_server/precision.py): its weights go
into a graph traced once per architecture and precision, which is then frozen per model, and each artifact passes
the accuracy gate against the model's own fp32 eager module before it is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from model_server.bert import SIZES, BertModel, BertShape, randomize
from model_server.config import (
    MODEL_FILE,
    AccuracyRecord,
    ConfigError,
    ModelConfig,
    TensorSpec,
    load_config,
    write_config,
)
from model_server.precision import (
    GATE_ROWS,
    CpuFeatures,
    Tolerance,
    finish,
    gate,
    prepare,
    require_supported,
    trace_prepared,
    transplant,
)
from model_server.tokenizer import build_tokenizer
from model_server.trace import quiet_jit, trace
from modelpack.api.modelpack import Precision

TOKENIZER_FILE = "tokenizer.json"
Progress = Callable[[int, int], None]


@dataclass
class FleetResult:
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def seed_for(name: str) -> int:
    """Stable across runs and machines (unlike ``hash()``), distinct per name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") & (2**63 - 1)


def shape_for(
    size: str = "tiny",
    *,
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    intermediate: int | None = None,
    seq_len: int = 128,
    vocab_size: int = 2000,
    task: str = "classification",
    num_labels: int = 2,
) -> BertShape:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    base = SIZES[size]
    hidden = hidden or base.hidden
    return BertShape(
        layers=layers or base.layers,
        hidden=hidden,
        heads=heads or base.heads,
        intermediate=intermediate or (4 * hidden if hidden != base.hidden else base.intermediate),
        seq_len=seq_len,
        vocab_size=vocab_size,
        task=task,
        num_labels=num_labels,
    )


def model_config(shape: BertShape, seed: int, precision: Precision | None = None) -> ModelConfig:
    tokens = [shape.seq_len]
    if shape.task == "qa":
        outputs = [
            TensorSpec(name="start_logits", datatype="FP32", shape=tokens),
            TensorSpec(name="end_logits", datatype="FP32", shape=tokens),
        ]
    else:
        outputs = [TensorSpec(name="logits", datatype="FP32", shape=[shape.num_labels])]
    return ModelConfig(
        platform="torchscript",
        max_batch_size=64,
        inputs=[
            TensorSpec(name="input_ids", datatype="INT64", shape=tokens),
            TensorSpec(name="attention_mask", datatype="INT64", shape=tokens),
        ],
        outputs=outputs,
        tokenizer=TOKENIZER_FILE,
        seq_len=shape.seq_len,
        task=shape.task,
        precision=precision,
        source={
            "builder": "modelpack.fleet/1",
            "shape": asdict(shape),
            "seed": seed,
            **({"precision": precision} if precision else {}),
        },
    )


def example_inputs(shape: BertShape, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, shape.vocab_size, (batch, shape.seq_len), generator=torch.Generator().manual_seed(0))
    return ids, torch.ones(batch, shape.seq_len, dtype=torch.int64)


def gate_inputs(shape: BertShape, seed: int, rows: int = GATE_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated inputs for the accuracy gate: random tokens, random lengths (a quarter to all of seq_len) with
    the rest padded and masked, as real text would be; seeded per model so a rebuild measures the same rows."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, shape.vocab_size, (rows, shape.seq_len), generator=generator)
    lengths = torch.randint(max(1, shape.seq_len // 4), shape.seq_len + 1, (rows, 1), generator=generator)
    mask = (torch.arange(shape.seq_len).unsqueeze(0) < lengths).to(torch.int64)
    return ids * mask, mask


def is_built(model_dir: Path, expected: ModelConfig) -> bool:
    """Present and valid: same architecture and seed recorded, weights and tokenizer on disk."""
    try:
        config = load_config(model_dir)
    except ConfigError:
        return False
    weights = model_dir / MODEL_FILE
    return (
        config.source == expected.source
        and weights.is_file()
        and weights.stat().st_size > 0
        and (model_dir / TOKENIZER_FILE).is_file()
    )


def build_fleet(
    store_dir: str | os.PathLike[str],
    names: Sequence[str],
    shape: BertShape | None = None,
    *,
    precision: Precision | None = None,
    tolerance: Tolerance | None = None,
    cpu: CpuFeatures | None = None,
    progress: Progress | None = None,
) -> FleetResult:
    """Write one folder per name (model.pt, config.json, tokenizer.json) of one architecture (:func:`shape_for`;
    default: the tiny size).

    ``precision`` (fp32, int8-dynamic, bf16) builds gated, optimized artifacts; None keeps the plain trace.
    An artifact outside ``tolerance`` raises :class:`~model_server.precision.AccuracyError` and is not written
    (models before it stay built)."""
    shape = shape or shape_for()
    if precision is not None:
        require_supported(precision, cpu)  # before any work: unknown names and missing CPU support fail at once
    bad = [n for n in names if not n or "/" in n or n in (".", "..")]
    if bad:
        raise ValueError(f"model names must be non-empty folder names, got {bad[0]!r}")
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    result = FleetResult()
    traced: torch.jit.ScriptModule | None = None
    tokenizer_json: str | None = None
    optimizer = _Optimizer(shape, precision, tolerance or Tolerance()) if precision is not None else None
    for done, name in enumerate(names, start=1):
        seed = seed_for(name)
        config = model_config(shape, seed, precision)
        model_dir = store / name
        if is_built(model_dir, config) and (optimizer is None or optimizer.passed(model_dir)):
            result.reused.append(name)
        else:
            if tokenizer_json is None:
                tokenizer_json = build_tokenizer(shape.vocab_size, shape.seq_len).to_str()
            if optimizer is not None:
                artifact, accuracy = optimizer.build(name, seed)
                config = config.model_copy(update={"accuracy": accuracy})
            else:
                if traced is None:
                    traced = trace(BertModel(shape), example_inputs(shape), "x86")
                randomize(traced, seed)
                artifact = traced
            model_dir.mkdir(exist_ok=True)
            _write_atomic(model_dir / TOKENIZER_FILE, tokenizer_json.encode())
            tmp = model_dir / f".{MODEL_FILE}.tmp"
            with quiet_jit():
                torch.jit.save(artifact, str(tmp))
            tmp.replace(model_dir / MODEL_FILE)
            write_config(model_dir, config)  # last: a config with ``source`` marks the model complete
            result.built.append(name)
        if progress is not None:
            progress(done, len(names))
    return result


class _Optimizer:
    """Gated artifacts of one architecture at one precision: one eager fp32 module (the reference, re-seeded per
    model) and one traced graph of the prepared precision, both reused, so a model costs a prepare, a freeze and
    the gate instead of a trace."""

    def __init__(self, shape: BertShape, precision: str, tolerance: Tolerance) -> None:
        self.shape, self.precision, self.tolerance = shape, precision, tolerance
        self.reference = BertModel(shape).eval()
        self.traced: torch.jit.ScriptModule | None = None

    def passed(self, model_dir: Path) -> bool:
        """A built artifact is reused only if its recorded gate result is within this build's tolerance."""
        accuracy = load_config(model_dir).accuracy
        return accuracy is not None and (
            accuracy.max_abs_diff <= self.tolerance.max_abs_diff
            and accuracy.top1_agreement >= self.tolerance.min_top1_agreement
        )

    def build(self, name: str, seed: int) -> tuple[torch.jit.ScriptModule, AccuracyRecord]:
        randomize(self.reference, seed)  # same weights, in the same order, as randomize() on the plain trace
        prepared = prepare(self.reference, self.precision)  # type: ignore[arg-type]
        if self.traced is None:
            self.traced = trace_prepared(prepared, example_inputs(self.shape))
        else:
            transplant(prepared, self.traced)
        artifact = finish(self.traced)
        inputs = gate_inputs(self.shape, seed)
        return artifact, gate(name, self.precision, self.reference, artifact, inputs, self.tolerance)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
