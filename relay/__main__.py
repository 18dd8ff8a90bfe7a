"""`python3 -m relay --port 8765`: serve the relay (PROTOCOL.md) until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import DEFAULT_NDIF
from .runner import REQUIREMENTS, installed_nnsight
from .server import Relay, make_server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m relay", description="lm-workbench's NDIF relay")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--ndif", default=os.environ.get("LMW_NDIF_HOST", DEFAULT_NDIF),
                        help=f"NDIF's API (default $LMW_NDIF_HOST or {DEFAULT_NDIF})")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("LMW_RELAY_CACHE", "data/relay-cache")),
                        help="folder for the models' config and tokenizer files (default data/relay-cache)")
    parser.add_argument("--stuck-after", type=float, default=20 * 60,
                        help="seconds a job may stay in one state before it is submitted again (default 1200)")
    args = parser.parse_args(argv)
    if not installed_nnsight():
        print(f"note: nnsight is not installed; jobs will fail until you run: pip install -r {REQUIREMENTS}",
              file=sys.stderr)
    relay = Relay(args.ndif, args.cache, stuck_after=args.stuck_after)
    server = make_server(relay, args.host, args.port)
    print(f"relay on http://{args.host}:{server.server_address[1]} for NDIF at {relay.ndif.host}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
