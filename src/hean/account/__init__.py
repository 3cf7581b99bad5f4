"""The account as the exchange sees it: open orders, positions, wallet and executions, kept in
step with the private stream and reconciled through REST after every gap (see docs/account.md).

* :class:`AccountState` (:mod:`hean.account.core`): the sans-I/O core with the merge rules.
"""

from hean.account.core import AccountState, AccountStats, RunEnd
from hean.account.merge import FILL_EXEC_TYPES, TERMINAL_STATUSES, is_fill, is_terminal

__all__ = [
    "FILL_EXEC_TYPES",
    "TERMINAL_STATUSES",
    "AccountState",
    "AccountStats",
    "RunEnd",
    "is_fill",
    "is_terminal",
]
