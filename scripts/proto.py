"""Generate the gRPC/protobuf package from proto/ into libs/proto/src (``make proto``).

``--check`` generates into a temporary folder and fails when the committed code differs, so CI
catches a proto edited without regenerating, or generated code edited by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "proto" / "src"
GENERATED = "sutazai"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    args = [
        "protoc", f"-I{PROTO_DIR}", f"-I{include}",
        f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b)
    found = [f"only in {cmp.left}: {n}" for n in cmp.left_only] + [f"only in {cmp.right}: {n}" for n in cmp.right_only]
    found += [f"differs: {Path(cmp.left) / n}" for n in cmp.diff_files]
    for sub in cmp.common_dirs:
        if sub != "__pycache__":
            found += differences(a / sub, b / sub)
    return [f for f in found if "__pycache__" not in f]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        if check:
            diff = differences(Path(tmp) / GENERATED, OUT_DIR / GENERATED)
            if diff:
                sys.exit("generated code is stale; run `make proto`:\n  " + "\n  ".join(diff))
            print("generated code is up to date")  # noqa: T201
            return
        shutil.rmtree(OUT_DIR / GENERATED, ignore_errors=True)
        shutil.copytree(Path(tmp) / GENERATED, OUT_DIR / GENERATED)
    print(f"generated {OUT_DIR / GENERATED}")  # noqa: T201


if __name__ == "__main__":
    main()
