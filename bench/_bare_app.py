"""The baseline for ``gateway_status.py``: a bare FastAPI hello-world served with the gateway's uvicorn settings.

Run as ``python bench/_bare_app.py PORT``; it listens on 127.0.0.1:PORT until SIGTERM or SIGINT.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


def main() -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
