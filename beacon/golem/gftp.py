"""The devnet's stand-in for ``gftp``: yapapi starts ``gftp server`` whether or not it moves files.

No registry ships gftp. Beacon's Golem tasks transfer no files (the request travels as the command's
argument, the answer as its stdout), so answering yapapi's ``version`` and ``shutdown`` JSON-RPC calls on
stdio is all yapapi needs; any other method answers a JSON-RPC error naming this stand-in.
"""

from __future__ import annotations

import json
import sys

VERSION = "0.7.3"


def serve() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            continue
        method = request.get("method")
        reply: dict[str, object] = {"jsonrpc": "2.0", "id": request.get("id")}
        if method == "version":
            reply["result"] = VERSION
        elif method == "shutdown":
            reply["result"] = "Ok"
        else:
            reply["error"] = {"code": -32601, "message": f"the devnet's gftp stand-in does not do {method!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if method == "shutdown":
            return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        print(f"gftp {VERSION} (beacon devnet stand-in)")
        return 0
    if args[:1] != ["server"]:
        print("the devnet's gftp stand-in only runs `gftp server`", file=sys.stderr)
        return 2
    return serve()


if __name__ == "__main__":
    sys.exit(main())
