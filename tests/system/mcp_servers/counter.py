"""A small MCP server for the tests, on the official SDK: each call of ``count`` appends a line to the file
named on the command line (so a test can tell how many times a tool really ran); ``danger`` is the tool
the tests mark ``requires_approval``; ``slow`` and ``big`` exceed a deadline and an output bound.

    python counter.py COUNT_FILE            # stdio
    python counter.py COUNT_FILE PORT       # streamable HTTP on 127.0.0.1:PORT/mcp
"""

import sys
import time

from mcp.server.mcpserver import MCPServer

COUNT_FILE = sys.argv[1]
app = MCPServer("counter")


@app.tool()
def count(label: str) -> str:
    """Count one call with a label."""
    with open(COUNT_FILE, "a") as f:
        f.write(label + "\n")
    with open(COUNT_FILE) as f:
        return f"counted {len(f.readlines())}"


@app.tool()
def danger(target: str) -> str:
    """Do something that needs a person's approval."""
    with open(COUNT_FILE + ".danger", "a") as f:
        f.write(target + "\n")
    return f"did {target}"


@app.tool()
def slow(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "slept"


@app.tool()
def big(size: int) -> str:
    """Answer with ``size`` characters."""
    return "x" * size


if __name__ == "__main__":
    if len(sys.argv) > 2:
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run()
