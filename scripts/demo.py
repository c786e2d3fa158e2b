#!/usr/bin/env python3
"""A short scripted tour of a running memory server: two users add memories, search, stay apart.

    python scripts/demo.py --url http://127.0.0.1:8765 --api-key=<key>

The URL and key may come from MEMORY_SERVER_URL and MEMORY_API_KEY instead. Exits 1 when a user
sees another user's memory.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

import httpx

MEMORIES = {
    "alice": [
        ("Alice's team owns the payments API, which depends on Postgres", ["service"]),
        ("Alice prefers short incident summaries with a timeline", []),
    ],
    "bob": [
        ("Bob is on call for the search cluster this week", ["temporary"]),
        ("Bob's favourite editor is Helix", []),
    ],
}
QUESTIONS = {"alice": "what does the payments API need?", "bob": "who is on call?"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MEMORY_SERVER_URL", "http://127.0.0.1:8765"))
    parser.add_argument("--api-key", default=os.environ.get("MEMORY_API_KEY"))
    parser.add_argument("--run-id", default=secrets.token_hex(3), help="suffix of the demo's user ids")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("give --api-key or set MEMORY_API_KEY (embedded mode prints it as 'API key: ...')")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    users = {name: f"{name}-{args.run_id}" for name in MEMORIES}
    headers = {"Authorization": f"Bearer {args.api_key}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        for name, memories in MEMORIES.items():
            for text, categories in memories:
                response = client.post(
                    "/api/v1/memories/",
                    json={"user_id": users[name], "text": text, "categories": categories, "app": "demo"},
                )
                response.raise_for_status()
                expires = response.json().get("expiration_date") or "never"
                print(f"added for {users[name]}: {text!r} (expires {expires})")

        leaked = False
        for name, question in QUESTIONS.items():
            found = client.post("/search", json={"query": question, "user_id": users[name], "top_k": 3})
            found.raise_for_status()
            results = found.json()["results"]
            print(f"\n{users[name]} asks {question!r}:")
            for result in results:
                print(f"  {result['score']:.2f}  {result['memory']}")
            others = {text for other, memories in MEMORIES.items() if other != name for text, _ in memories}
            leaked = leaked or any(result["memory"] in others for result in results)

        listed = client.get("/api/v1/memories/", params={"user_id": users["bob"]}).json()
        alices = {text for text, _ in MEMORIES["alice"]}
        leaked = leaked or any(item["content"] in alices for item in listed["items"])
        print(f"\n{users['bob']} lists {listed['total']} memories.")
    print("isolation: VIOLATED" if leaked else "isolation: ok")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
