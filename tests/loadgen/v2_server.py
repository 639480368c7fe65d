"""A tiny Open Inference Protocol V2 server with controllable delays, run as a real separate process in tests.

    python -m tests.loadgen.v2_server --models m1,m2 [--delay-ms 1] [--model-delay m2=20] [--stall-after 200
        --stall-ms 1000] [--serial-ms 20] [--fail-model m3]

It prints ``PORT <n>`` once listening. ``--stall-after N`` blocks the whole process (time.sleep) while
handling the N-th inference: a GC-pause-like stall where nothing is answered. ``--serial-ms`` serves one
request at a time for that long each: a single-queue server whose latency grows without bound past
1000/serial-ms requests per second. ``GET /stats`` returns how many inference requests arrived, per model,
and the most ever in progress at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter

from aiohttp import web


def build_app(args: argparse.Namespace) -> web.Application:
    models = args.models.split(",")
    model_delay = {k: float(v) / 1000 for k, v in (item.split("=") for item in args.model_delay)}
    counts: Counter[str] = Counter()
    lock = asyncio.Lock()
    state = {"infer": 0, "in_flight": 0, "max_in_flight": 0}

    def metadata(name: str) -> dict[str, object]:
        return {
            "name": name,
            "versions": ["1"],
            "platform": "test",
            "inputs": [
                {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
                {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]},
            ],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}],
        }

    async def get_model(request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in models:
            return web.json_response({"error": f"unknown model {name}"}, status=404)
        return web.json_response(metadata(name))

    async def infer(request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in models:
            return web.json_response({"error": f"unknown model {name}"}, status=404)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("inputs"):
            return web.json_response({"error": "no inputs"}, status=400)
        state["infer"] += 1
        counts[name] += 1
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            return await answer(name)
        finally:
            state["in_flight"] -= 1

    async def answer(name: str) -> web.Response:
        if args.stall_after and state["infer"] == args.stall_after:
            time.sleep(args.stall_ms / 1000)  # blocks the event loop: nothing is answered meanwhile
        if args.serial_ms:
            async with lock:
                await asyncio.sleep(args.serial_ms / 1000)
        delay = model_delay.get(name, args.delay_ms / 1000)
        if delay:
            await asyncio.sleep(delay)
        if name in args.fail_model:
            return web.json_response({"error": "model failed"}, status=500)
        return web.json_response(
            {
                "model_name": name,
                "outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 2], "data": [0.1, 0.9]}],
            }
        )

    async def index(request: web.Request) -> web.Response:
        return web.json_response([{"name": m, "version": "1", "state": "READY"} for m in models])

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"infer": state["infer"], "per_model": dict(counts), "max_in_flight": state["max_in_flight"]}
        )

    app = web.Application()
    app.router.add_get("/v2/models/{model}", get_model)
    app.router.add_post("/v2/models/{model}/infer", infer)
    app.router.add_post("/v2/repository/index", index)
    app.router.add_get("/stats", stats)
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build_app(args), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="m1")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--model-delay", action="append", default=[], help="MODEL=MS")
    parser.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--stall-ms", type=float, default=1000.0)
    parser.add_argument("--serial-ms", type=float, default=0.0)
    parser.add_argument("--fail-model", action="append", default=[])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
