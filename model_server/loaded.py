"""One model in memory: its TorchScript module, config and tokenizer, and how to run a batch through it.

Only TorchScript is loaded (``torch.jit.load``, or its tensors into a copy of an already loaded model of the
same architecture: templates.py), never arbitrary pickles, so a store cannot run code on load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from model_server.config import MODEL_FILE, ModelConfig, load_config
from model_server.datatypes import NUMPY_DTYPES
from model_server.templates import TEMPLATES, Templates, jit_load
from model_server.tokenizer import load_tokenizer


@dataclass
class LoadedModel:
    name: str
    config: ModelConfig
    module: torch.jit.ScriptModule
    tokenizer: Tokenizer | None
    size_bytes: int
    jit_optimize: bool = False
    planned: bool = False  # a template copy: its (shared) methods' execution plan exists, no warm-up needed

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Blocking forward pass; called from an inference thread, never the event loop.

        TorchScript's optimizing executor profiles and re-specializes each module for every new input shape: a
        large first-call cost per (model, batch size) that buys no measurable steady-state speed for these models
        (docs/perf/server.md), and a server with thousands of models pays it constantly. Hence off by default.
        """
        tensors = [torch.from_numpy(a) for a in inputs]
        with torch.jit.optimized_execution(self.jit_optimize), torch.inference_mode():
            out = self.module(*tensors)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if len(outs) != len(self.config.outputs):
            raise RuntimeError(
                f"model {self.name} returned {len(outs)} outputs, config.json declares {len(self.config.outputs)}"
            )
        return [t.contiguous().numpy() for t in outs]

    def warm_up(self) -> bool:
        """One forward pass on zeros of the declared shapes (batch 1), run by the load thread.

        A module's first call builds its execution plan (~10-25 ms for a tiny BERT): paying it here keeps it off
        the inference threads, where it would delay every warm model's batches. Skipped for variable or BYTES
        shapes; a model that fails on zeros still loads (real inputs decide), hence no exception. Skipped for a
        template copy too (templates.py): it shares its compiled methods, and so their plan, with the model of
        its architecture that was loaded first and warmed up then; its first call costs what any call does.
        """
        if self.planned:
            return True
        specs = self.config.inputs
        if any(d == -1 for s in specs for d in s.shape) or any(s.datatype not in NUMPY_DTYPES for s in specs):
            return False
        batch = [1] if self.config.max_batch_size > 0 else []
        try:
            self.run([np.zeros(batch + s.shape, dtype=NUMPY_DTYPES[s.datatype]) for s in specs])
        except Exception:  # any model error: the model's own inputs will surface it with a 400
            return False
        return True

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        """input_ids and attention_mask, padded/truncated to the model's seq_len."""
        assert self.tokenizer is not None
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        by_name = {"input_ids": ids, "attention_mask": mask}
        return [by_name[spec.name] for spec in self.config.inputs]


# What a loaded TorchScript model costs beyond its tensors: its graphs and code (~0.9 MiB for a BERT encoder),
# the executor's plan after the first run (~1.5 MiB) and its tokenizer (~0.3 MiB), measured for the fleet's
# BERT models (docs/perf/server.md). Without it, 3,000 tiny models under a 1 GiB budget used twice the budget.
MODEL_OVERHEAD_BYTES = 3 * 1024**2


def module_bytes(module: torch.nn.Module, artifact_bytes: int = 0) -> int:
    """Parameter + buffer bytes plus the fixed per-model overhead: what the memory budget counts (deterministic,
    unlike RSS deltas, which other threads' allocations blur).

    A frozen artifact (any ``precision``) has no parameters left: its weights are graph constants, and int8
    Linears keep theirs in packed parameters, so neither shows in ``parameters()``. For those the archive's size
    (``artifact_bytes``: the uncompressed tensors plus a little code) stands in for the tensors."""
    tensors = [*module.parameters(), *module.buffers()]
    return max(sum(t.numel() * t.element_size() for t in tensors), artifact_bytes) + MODEL_OVERHEAD_BYTES


def load_model(
    name: str, model_dir: Path, config: ModelConfig | None = None, templates: Templates | None = None
) -> LoadedModel:
    """``templates``: where plain traces find their architecture's module structure (templates.py); the
    process's own by default."""
    config = config or load_config(model_dir)
    if config.platform == "neuron":
        from model_server import neuron

        neuron.runtime()  # registers Neuron ops with torch.jit; clear error when the SDK is absent
    if config.precision == "bf16":
        from model_server.precision import CpuFeatures, unsupported_reason

        reason = unsupported_reason("bf16", CpuFeatures.detect())
        if reason is not None:  # it would run, emulated, slower than the fp32 model it replaces
            raise ValueError(f"{model_dir}: a bf16 artifact, and {reason}; rebuild it as fp32 or int8-dynamic")
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    planned = False
    if config.platform == "torchscript" and config.precision is None:
        module, planned = (templates or TEMPLATES).load(path)  # a plain trace: may share its architecture's template
    else:
        module = jit_load(path)
    module.eval()
    tokenizer = None
    if config.tokenizer is not None:
        assert config.seq_len is not None
        tokenizer = load_tokenizer(model_dir / config.tokenizer, config.seq_len)
    artifact_bytes = path.stat().st_size if config.precision is not None else 0
    return LoadedModel(
        name=name,
        config=config,
        module=module,
        tokenizer=tokenizer,
        size_bytes=module_bytes(module, artifact_bytes),
        planned=planned,
    )
