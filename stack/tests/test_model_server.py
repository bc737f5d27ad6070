"""The local model server's own code (``sutazai_stack/model_server.py``), run by the model server's interpreter
as the launcher runs it: grammars built from JSON schemas keep raw control characters out of strings, and
llama.cpp accepts them (one short constrained generation with the real model)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sutazai_stack.config import model_server_python as recorded_model_python
from sutazai_stack.embedded import MODEL_SERVER, model_path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import model_server  # as `python model_server.py` does before serving
from llama_cpp import Llama, llama_grammar
schema = {"type": "object", "properties": {"city": {"type": "string"}, "note": {"type": "string", "maxLength": 8}},
          "required": ["city"]}
grammar = llama_grammar.LlamaGrammar.from_json_schema(json.dumps(schema))._grammar
llm = Llama(sys.argv[2], n_ctx=512, n_threads=1, verbose=False, chat_format=model_server.FORMAT)
reply = llm.create_chat_completion(messages=[{"role": "user", "content": "Name a city."}], max_tokens=40,
                                   temperature=0, response_format={"type": "json_object", "schema": schema})
print(json.dumps({"grammar": grammar, "choice": reply["choices"][0]}))
"""


def _model_python() -> Path:
    try:
        return recorded_model_python(REPO)
    except LookupError as exc:
        pytest.fail(str(exc))


def test_json_schema_grammars_exclude_control_characters_and_the_model_follows_them() -> None:
    python = _model_python()
    ran = subprocess.run([str(python), "-c", PROBE, str(MODEL_SERVER.parent), str(model_path(python))],
                         capture_output=True, text=True, timeout=300, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    char = next(line for line in out["grammar"].splitlines() if line.startswith("char ::="))
    assert r"[^" + '"' + r"\\\x7F\x00-\x1F]" in char, char  # no raw newline, tab, ... inside a JSON string
    choice = out["choice"]
    content = choice["message"]["content"]
    assert not any(ord(c) < 0x20 and c not in " " for c in content.strip()), content  # strict JSON text
    if choice["finish_reason"] == "stop":
        assert isinstance(json.loads(content)["city"], str)
