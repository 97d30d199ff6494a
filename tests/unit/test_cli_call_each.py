"""``Context.call_each``: one JSON-RPC batch per hundred calls, results in order, a call left
out for the batch's reply budget made alone, and a refusal of any one call ending the command
as a single call's refusal does."""

from __future__ import annotations

from typing import Any

import pytest

from spad.cli.context import BATCH, EXIT_REFUSED, Context


class RecordingClient:
    """The client's ``batch``, answered from the params; the one numbered ``refused`` is
    refused as the server refuses a workflow that does not exist."""

    def __init__(self, refused: int | None = None, budget: int | None = None) -> None:
        self.refused = refused
        self.budget = budget  # calls of a batch made before its replies reach their budget
        self.batches: list[tuple[str, int]] = []
        self.alone: list[int] = []

    def batch(self, method: str, each: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append((method, len(each)))
        return [self._reply(p, i) for i, p in enumerate(each)]

    def _reply(self, params: dict[str, Any], place: int) -> dict[str, Any]:
        if self.budget is not None and place >= self.budget:
            over = {"kind": "invalid", "limit": "batch_reply"}
            return {"error": {"code": -32004, "message": "not done", "data": over}}
        if params["n"] == self.refused:
            return {
                "error": {"code": -32004, "message": f"workflow 'w{params['n']}' does not exist"}
            }
        return {"result": {"n": params["n"]}}

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.alone.append(params["n"])
        return {"n": params["n"]}


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


def test_calls_left_out_for_the_batch_s_reply_budget_are_made_alone() -> None:
    client = RecordingClient(budget=30)  # big workflows: 30 statuses fill a batch's replies
    results = context_with(client).call_each("status", [{"n": n} for n in range(40)])
    assert [r["n"] for r in results] == list(range(40))
    assert client.batches == [("status", 40)] and client.alone == list(range(30, 40))


def test_the_server_s_budget_marker_is_the_one_the_client_knows() -> None:
    from spad.cli.context import OVER_BUDGET
    from spad.server.rpc import OVER_BUDGET_LIMIT

    assert OVER_BUDGET == OVER_BUDGET_LIMIT


def test_a_reply_without_a_result_ends_the_command_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Mute(RecordingClient):
        def batch(self, method: str, each: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"jsonrpc": "2.0", "id": 1} for _ in each]

    with pytest.raises(SystemExit) as ended:
        context_with(Mute()).call_each("status", [{"n": 1}])
    assert ended.value.code == EXIT_REFUSED
    assert "reply to status had no result" in capsys.readouterr().err
