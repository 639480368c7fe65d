"""The peer for benchmark 4: the same TorchScript model behind KServe's Python model server (V2 REST).

Runs inside a separate venv that has ``kserve`` (see docs/perf/server.md), never in the project's venv:
    /tmp/kserve-venv/bin/python benchmarks/server_kserve_model.py --model-dir DIR --name NAME --port P --threads 1
Written the way KServe documents custom models: load in ``load()``, a synchronous ``predict`` that takes an
InferRequest and returns an InferResponse. KServe's Python server has no dynamic batching of its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kserve
import numpy as np
import torch
from kserve import InferOutput, InferRequest, InferResponse


class TorchScriptModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.module: torch.jit.ScriptModule | None = None

    def load(self) -> bool:
        self.module = torch.jit.load(str(self.model_dir / "model.pt"), map_location="cpu").eval()
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        by_name = {i.name: i.as_numpy() for i in payload.inputs}
        ids = torch.from_numpy(np.ascontiguousarray(by_name["input_ids"], dtype=np.int64))
        mask = torch.from_numpy(np.ascontiguousarray(by_name["attention_mask"], dtype=np.int64))
        assert self.module is not None
        with torch.inference_mode():
            logits = self.module(ids, mask).numpy()
        out = InferOutput(name="logits", shape=list(logits.shape), datatype="FP32")
        out.set_data_from_numpy(logits, binary_data=False)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[out])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = TorchScriptModel(args.name, Path(args.model_dir))
    model.load()
    kserve.ModelServer(http_port=args.port, grpc_port=args.port + 1, workers=1, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
