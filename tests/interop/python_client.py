#!/usr/bin/env python3
"""Drives mcp-security's secured example servers with the official Python MCP SDK (PyPI `mcp`).

Run by tests/interop_python.rs, which starts the servers, writes the policy and asserts on the
JSON summary this script prints to stdout (nothing else goes to stdout; the SDK logs to stderr).
The script decides nothing: it records what the server answered, and the Rust test judges it.

    python_client.py probe
    python_client.py stdio --server BIN --policy FILE --era legacy|modern
    python_client.py http --url http://127.0.0.1:PORT/mcp --era legacy|modern

Eras: `legacy` opens the connection with the `initialize` handshake (protocol 2025-11-25),
`modern` with `server/discover` (2026-07-28, no handshake, every request stands alone).

Keys come from the environment, never from the command line (where `ps` would show them):
INTEROP_KEY (a host allowed everything in the test policy), INTEROP_LIMITED_KEY (a host that sees
only echo and who_am_i), INTEROP_WRONG_KEY (a key the policy does not know) and, over HTTP,
INTEROP_NOSCOPE_KEY (a known key without the scope the HTTP layer requires).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable

try:
    import mcp  # noqa: F401
    import anyio
    import httpx2  # noqa: F401 - the HTTP client mcp 2.x is built on
except ImportError as missing:
    sys.exit(f"the Python MCP SDK 2.x is not installed ({missing}); python3 -m pip install mcp==2.3.0")

# Every step is bounded, so a server that stops answering fails the test instead of hanging it.
STEP_SECONDS = 30


def sdk_version() -> str:
    return importlib.metadata.version("mcp")


def error_of(e: BaseException) -> dict[str, Any]:
    """An MCP error as the SDK surfaced it, or any other exception by type and text."""
    from mcp import MCPError

    if isinstance(e, MCPError):
        return {"code": e.code, "message": e.message, "data": e.data}
    if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        return error_of(e.exceptions[0])
    return {"exception": type(e).__name__, "text": str(e)}


def tool_result(r: Any) -> dict[str, Any]:
    texts = [c.text for c in r.content if getattr(c, "type", None) == "text"]
    return {"is_error": bool(r.is_error), "text": "\n".join(texts)}


async def attempt(step: Awaitable[Any], shape=lambda r: None) -> dict[str, Any]:
    """Runs one request: `{"ok": shape(result)}` or `{"error": ...}`."""
    try:
        with anyio.fail_after(STEP_SECONDS):
            return {"ok": shape(await step)}
    except Exception as e:  # noqa: BLE001 - every failure is data for the Rust side
        return {"error": error_of(e)}


@asynccontextmanager
async def open_session(args: argparse.Namespace, key: str | None, exchanges: list) -> AsyncIterator[Any]:
    """A ClientSession over the chosen transport presenting `key` (None: no credentials)."""
    from mcp import ClientSession

    if args.transport == "stdio":
        from mcp import StdioServerParameters, stdio_client

        # The SDK passes the child only a minimal environment plus `env`, so "no key" is no key.
        env = {"MCP_API_KEY": key} if key is not None else {}
        params = StdioServerParameters(command=args.server, args=["--policy", args.policy], env=env)
        async with stdio_client(params, errlog=sys.stderr) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=STEP_SECONDS) as session:
                yield session
    else:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async def record(response: Any) -> None:
            # What the HTTP layer answered, as the client saw it: the SDK itself reports a 401
            # only as a generic JSON-RPC error, so the status and challenge are kept here.
            exchanges.append(
                {
                    "method": response.request.method,
                    "status": response.status_code,
                    "www_authenticate": response.headers.get("www-authenticate"),
                }
            )

        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        client = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(STEP_SECONDS, read=STEP_SECONDS * 2),
            event_hooks={"response": [record]},
            trust_env=False,  # loopback only: no proxy from the environment
        )
        async with client:
            async with streamable_http_client(args.url, http_client=client) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=STEP_SECONDS) as session:
                    yield session


async def handshake(session: Any, era: str) -> Any:
    if era == "legacy":
        return await session.initialize()
    return await session.discover()


async def authorized(args: argparse.Namespace, key: str) -> dict[str, Any]:
    """Everything the fully allowed host does on one connection."""
    out: dict[str, Any] = {}
    exchanges: list = []
    async with open_session(args, key, exchanges) as s:
        out["handshake"] = await attempt(handshake(s, args.era), lambda r: None)
        out["protocol_version"] = s.protocol_version
        if "error" in out["handshake"]:
            return out
        out["tools"] = await attempt(s.list_tools(), lambda r: sorted(t.name for t in r.tools))
        out["who_am_i"] = await attempt(s.call_tool("who_am_i", {}), tool_result)
        out["echo"] = await attempt(
            s.call_tool("echo", {"text": "mail jane.roe@example.org, card 5555 5555 5555 4444"}),
            tool_result,
        )
        out["query"] = await attempt(
            s.call_tool("query_database", {"query": "SELECT id FROM orders", "limit": 5}),
            tool_result,
        )
        out["invalid_limit"] = await attempt(
            s.call_tool("query_database", {"query": "SELECT id FROM orders", "limit": 5000}),
            tool_result,
        )
        out["sql_injection"] = await attempt(
            s.call_tool("query_database", {"query": "'; DROP TABLE users; --"}),
            tool_result,
        )
        out["forbidden_tool"] = await attempt(s.call_tool("delete_all_data", {}), tool_result)
        out["unknown_tool"] = await attempt(s.call_tool("no_such_tool", {}), tool_result)
        out["resources"] = await attempt(
            s.list_resources(), lambda r: sorted(str(x.uri) for x in r.resources)
        )
        out["resource"] = await attempt(
            s.read_resource("file:///srv/data/report.csv"),
            lambda r: "\n".join(c.text for c in r.contents if hasattr(c, "text")),
        )
        out["hidden_resource"] = await attempt(s.read_resource("file:///etc/passwd"), lambda r: None)
        out["prompts"] = await attempt(s.list_prompts(), lambda r: sorted(p.name for p in r.prompts))
        out["prompt"] = await attempt(
            s.get_prompt("summarize", {}),
            lambda r: "\n".join(m.content.text for m in r.messages if hasattr(m.content, "text")),
        )
    out["http"] = exchanges
    return out


async def limited(args: argparse.Namespace, key: str) -> dict[str, Any]:
    """A host allowed only echo and who_am_i: the other tools must not exist for it."""
    out: dict[str, Any] = {}
    exchanges: list = []
    async with open_session(args, key, exchanges) as s:
        out["handshake"] = await attempt(handshake(s, args.era), lambda r: None)
        if "error" in out["handshake"]:
            return out
        out["tools"] = await attempt(s.list_tools(), lambda r: sorted(t.name for t in r.tools))
        out["who_am_i"] = await attempt(s.call_tool("who_am_i", {}), tool_result)
        out["hidden_tool"] = await attempt(
            s.call_tool("query_database", {"query": "SELECT id FROM orders"}), tool_result
        )
        out["resources"] = await attempt(
            s.list_resources(), lambda r: sorted(str(x.uri) for x in r.resources)
        )
    return out


async def refused(args: argparse.Namespace, key: str | None) -> dict[str, Any]:
    """A caller the server must refuse before anything else happens."""
    exchanges: list = []
    out: dict[str, Any] = {}
    try:
        async with open_session(args, key, exchanges) as s:
            out["handshake"] = await attempt(handshake(s, args.era), lambda r: s.protocol_version)
            if args.era == "modern":
                # 2026-07-28 has no handshake to pass: every request carries its own metadata.
                # Skip server/discover (adopt what it would have said) and call a tool directly.
                from mcp import types

                s.adopt(
                    types.DiscoverResult(
                        supported_versions=["2026-07-28"],
                        capabilities=types.ServerCapabilities(),
                        result_type="complete",
                        ttl_ms=0,
                        cache_scope="public",
                    )
                )
                out["direct_call"] = await attempt(s.call_tool("who_am_i", {}), tool_result)
    except Exception as e:  # noqa: BLE001 - a transport torn down by the refusal is data too
        out.setdefault("handshake", {"error": error_of(e)})
    out["http"] = exchanges
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = os.environ
    summary: dict[str, Any] = {
        "sdk": {"package": "mcp", "version": sdk_version()},
        "transport": args.transport,
        "era": args.era,
    }
    summary["authorized"] = await authorized(args, env["INTEROP_KEY"])
    summary["limited"] = await limited(args, env["INTEROP_LIMITED_KEY"])
    summary["wrong_key"] = await refused(args, env["INTEROP_WRONG_KEY"])
    summary["missing_key"] = await refused(args, None)
    if "INTEROP_NOSCOPE_KEY" in env:
        summary["no_scope"] = await refused(args, env["INTEROP_NOSCOPE_KEY"])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="transport", required=True)
    sub.add_parser("probe", help="print the installed SDK version as JSON")
    stdio = sub.add_parser("stdio")
    stdio.add_argument("--server", required=True)
    stdio.add_argument("--policy", required=True)
    stdio.add_argument("--era", choices=["legacy", "modern"], required=True)
    http = sub.add_parser("http")
    http.add_argument("--url", required=True)
    http.add_argument("--era", choices=["legacy", "modern"], required=True)
    args = parser.parse_args()
    if args.transport == "probe":
        # Imports the transports this script uses, so a too-old SDK is found here, not mid-test.
        from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: F401
        from mcp.client.streamable_http import streamable_http_client  # noqa: F401

        print(json.dumps({"mcp": sdk_version()}))
        return
    summary = anyio.run(run, args)
    json.dump(summary, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
