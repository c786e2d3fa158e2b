"""docs/server-api.md's reference is the server's own: regenerated from its OpenAPI document and MCP
tools, it must equal the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / "scripts" / "generate-server-api-docs.py"


def test_the_server_api_reference_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        result.stderr + "\nrun: .venv/bin/python scripts/generate-server-api-docs.py"
    )


def test_every_route_and_tool_is_in_the_reference() -> None:
    text = (REPOSITORY / "docs" / "server-api.md").read_text()
    for heading in (
        "#### `GET /api/v1/apps/{app_id}/accessed`",
        "#### `POST /api/v1/backup/import`",
        "#### `PUT /memories/{memory_id}`",
        "#### `POST /v3/memories/add/`",
        "#### `add_memories`",
        "#### `delete_all_memories`",
    ):
        assert heading in text, heading
    for section in (
        "## Migrating from OpenMemory",
        "## Migrating from mem0's REST server",
        "## Migrating from the hosted platform's client",
    ):
        assert section in text, section
