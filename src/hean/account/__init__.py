"""The account as the exchange sees it: open orders, positions, wallet and executions, kept in
step with the private stream and reconciled through REST after every gap (see docs/account.md).

* :class:`Account` (:mod:`hean.account.account`): the asyncio shell: private WebSocket in,
  de-duplicated events out, reconciliation runs, order helpers.
* :class:`AccountState` (:mod:`hean.account.core`): the sans-I/O core with the merge rules
  (:mod:`hean.account.merge`).
"""

from hean.account.account import ACCOUNT_TOPICS, Account, AccountError, AccountInfo
from hean.account.core import AccountState, AccountStats, RunEnd
from hean.account.merge import FILL_EXEC_TYPES, TERMINAL_STATUSES, is_fill, is_terminal

__all__ = [
    "ACCOUNT_TOPICS",
    "FILL_EXEC_TYPES",
    "TERMINAL_STATUSES",
    "Account",
    "AccountError",
    "AccountInfo",
    "AccountState",
    "AccountStats",
    "RunEnd",
    "is_fill",
    "is_terminal",
]
