"""Run the stand-in on its own: ``PYTHONPATH=tests/support python -m opensearch_standin --port 9200``."""

from __future__ import annotations

import argparse
import time

from . import OpenSearchStandin


def main() -> None:
    parser = argparse.ArgumentParser(prog="opensearch_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--version", default="2.19.1", help="OpenSearch version to emulate")
    args = parser.parse_args()
    with OpenSearchStandin(host=args.host, port=args.port, version=args.version) as server:
        print(f"OpenSearch stand-in {args.version} at {server.url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
