"""``config.json`` of one model in the store, parsed with pydantic so errors name the file and the field.

Shapes follow Triton's convention: when ``max_batch_size`` > 0 the leading batch dimension is implied and
not listed; ``-1`` marks a variable dimension.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from model_server.datatypes import Datatype
from modelpack.api.modelpack import Precision

CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"


class ConfigError(ValueError):
    """A model's config.json is missing, not JSON, or has a bad field; the message names file and field."""


class TensorSpec(BaseModel):
    """One named input or output tensor."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Tensor name used in requests and responses.")
    datatype: Datatype = Field(description="V2 datatype, e.g. INT64, FP32, BYTES.")
    shape: list[int] = Field(description="Dimensions without the batch dimension; -1 is variable.")

    @model_validator(mode="after")
    def _dims(self) -> TensorSpec:
        if any(d == 0 or d < -1 for d in self.shape):
            raise ValueError(f"shape of {self.name!r} may hold only positive sizes or -1, got {self.shape}")
        return self


class AccuracyRecord(BaseModel):
    """The build-time gate's result for an optimized artifact, against the fp32 model on generated inputs."""

    model_config = ConfigDict(extra="forbid")

    max_abs_diff: float = Field(ge=0, description="Largest absolute difference of any output from fp32's.")
    top1_agreement: float = Field(ge=0, le=1, description="Share of rows (per output) whose argmax matches fp32's.")
    rows: int = Field(ge=1, description="Generated input rows compared.")
    max_abs_diff_tolerance: float = Field(ge=0, description="The tolerance the artifact was built under.")
    min_top1_agreement: float = Field(ge=0, le=1, description="The least top-1 agreement it was built under.")


class ModelConfig(BaseModel):
    """What the server needs to know to validate requests and run a model."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["torchscript", "neuron"] = Field(
        default="torchscript", description="How model.pt was produced: torch.jit (CPU) or torch_neuronx."
    )
    max_batch_size: int = Field(default=8, ge=0, description="Largest batch the model takes; 0 = no batch dim.")
    inputs: list[TensorSpec] = Field(min_length=1, description="Inputs in the order forward() takes them.")
    outputs: list[TensorSpec] = Field(min_length=1, description="Outputs in the order forward() returns them.")
    tokenizer: str | None = Field(default=None, description="tokenizer.json file name, if the model takes text.")
    text_input: str = Field(
        default="text", min_length=1, description="Name of the BYTES input tokenized on the server."
    )
    seq_len: int | None = Field(default=None, ge=1, description="Sequence length text is padded/truncated to.")
    task: str | None = Field(default=None, description="Informational: classification, qa, ...")
    precision: Precision | None = Field(
        default=None,
        description="Optimized artifact model.pt is (fp32 frozen, int8-dynamic, bf16); absent: traced as-is.",
    )
    accuracy: AccuracyRecord | None = Field(
        default=None, description="The build-time accuracy gate's result for this artifact against fp32."
    )
    source: dict[str, Any] | None = Field(
        default=None, description="How the fleet builder made the model (shape, seed); reruns reuse matching models."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        for kind, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [s.name for s in specs]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} has duplicate names: {', '.join(dupes)}")
        if self.tokenizer is not None:
            if self.seq_len is None:
                raise ValueError("seq_len is required when tokenizer is set")
            if {s.name for s in self.inputs} - {"input_ids", "attention_mask"}:
                raise ValueError("a model with a tokenizer must take exactly input_ids and attention_mask")
        return self


def load_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not readable JSON: {err}") from None
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: {problems}") from None


def write_config(model_dir: Path, config: ModelConfig) -> None:
    (model_dir / CONFIG_FILE).write_text(config.model_dump_json(indent=2, exclude_none=True) + "\n")


def check_precision(config: ModelConfig, expected: Precision | None, where: str) -> None:
    """A server told which artifact its pack asks for (``--precision``) refuses a model built otherwise, saying
    how to rebuild it, rather than quietly serving a slower or less accurate model than the pack declares."""
    if expected is None or config.precision == expected:
        return
    built = f"a {config.precision} artifact" if config.precision else "a plain trace (no precision)"
    raise ValueError(
        f"{where}: {built}, but this server serves {expected} models (server.precision); "
        f"rebuild the store with `modelpack models build --precision {expected}`"
    )
