"""A small stdio MCP server for the system tests, on the official SDK: each call of ``count`` appends a
line to the file named on the command line (so a test can tell how many times a tool really ran);
``danger`` is the tool the tests mark ``requires_approval``."""

import sys

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


if __name__ == "__main__":
    app.run()
