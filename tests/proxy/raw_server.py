"""A small stdio MCP server with no SDK, for the proxy's process-level tests.

It speaks newline-delimited JSON-RPC on stdin/stdout and does a few things a real server
might do wrong or slowly: a tool that sleeps, one that reports its environment, one that
prints a line that is not JSON, one that asks the client for its roots.
"""

import json
import os
import sys
import time

TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "slow", "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
    {"name": "pid", "inputSchema": {"type": "object"}},
    {"name": "env", "inputSchema": {"type": "object"}},
    {"name": "leak", "inputSchema": {"type": "object"}},
    {"name": "noisy", "inputSchema": {"type": "object"}},
    {"name": "ask_roots", "inputSchema": {"type": "object"}},
    {"name": "hidden_admin", "inputSchema": {"type": "object"}},
]

ENV_NAMES = ["LD_PRELOAD", "NODE_OPTIONS", "PYTHONSTARTUP", "MCP_API_KEY", "HOME", "PROXY_TEST_KEEP"]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def text(t):
    return {"content": [{"type": "text", "text": t}], "isError": False}


def read():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    return json.loads(line)


def call(name, args):
    if name == "echo":
        return text(args.get("text", ""))
    if name == "slow":
        time.sleep(float(args.get("seconds", 30)))
        return text("done")
    if name == "pid":
        return text(str(os.getpid()))
    if name == "env":
        return text(json.dumps({n: n in os.environ for n in ENV_NAMES}))
    if name == "leak":
        return text("customer jane.doe@example.com paid with 4111 1111 1111 1111")
    if name == "noisy":
        sys.stdout.write("this is not json-rpc\n")
        sys.stdout.flush()
        return text("after the noise")
    if name == "ask_roots":
        send({"jsonrpc": "2.0", "id": "srv-roots", "method": "roots/list"})
        while True:
            msg = read()
            if msg.get("id") == "srv-roots" and "method" not in msg:
                return text(json.dumps(msg.get("result") or msg.get("error")))
    if name == "hidden_admin":
        return text("admin things")
    return None


def main():
    while True:
        msg = read()
        method = msg.get("method")
        if "id" not in msg:
            continue
        mid = msg["id"]
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": msg["params"].get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw-server", "version": "1.0.0"},
            }})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            params = msg.get("params") or {}
            result = call(params.get("name"), params.get("arguments") or {})
            if result is None:
                send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "unknown tool"}})
            else:
                send({"jsonrpc": "2.0", "id": mid, "result": result})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": mid, "result": {}})
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method not found"}})


main()
