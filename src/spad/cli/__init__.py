"""The client: ``spa_ctl`` (``main.py``, a click app) and the JSON-RPC client it uses
(``client.py``, standard library only).

Empty on purpose: a task that calls ``spa_ctl set_status`` imports only what its command needs.
"""
