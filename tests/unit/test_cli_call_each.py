"""``Context.call_each``: one JSON-RPC batch per hundred calls, results in order, and a refusal
of any one call ending the command as a single call's refusal does."""

from __future__ import annotations

from typing import Any

import pytest

from spad.cli.context import BATCH, EXIT_REFUSED, Context


class RecordingClient:
    """The client's ``batch``, answered from the params; the one numbered ``refused`` is
    refused as the server refuses a workflow that does not exist."""

    def __init__(self, refused: int | None = None) -> None:
        self.refused = refused
        self.batches: list[tuple[str, int]] = []

    def batch(self, method: str, each: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append((method, len(each)))
        return [
            {"error": {"code": -32004, "message": f"workflow 'w{p['n']}' does not exist"}}
            if p["n"] == self.refused
            else {"result": {"n": p["n"]}}
            for p in each
        ]


def context_with(client: RecordingClient) -> Context:
    ctx = Context()
    ctx._client = client  # type: ignore[assignment]
    return ctx


def test_calls_go_in_batches_and_come_back_in_order() -> None:
    client = RecordingClient()
    results = context_with(client).call_each("status", [{"n": n} for n in range(2 * BATCH + 50)])
    assert [r["n"] for r in results] == list(range(2 * BATCH + 50))
    assert client.batches == [("status", BATCH), ("status", BATCH), ("status", 50)]


def test_nothing_to_call_sends_nothing() -> None:
    client = RecordingClient()
    assert context_with(client).call_each("status", []) == [] and client.batches == []


def test_a_refused_call_ends_the_command_with_its_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as ended:
        context_with(RecordingClient(refused=7)).call_each("status", [{"n": n} for n in range(9)])
    assert ended.value.code == EXIT_REFUSED
    assert "workflow 'w7' does not exist" in capsys.readouterr().err
