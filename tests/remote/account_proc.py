"""An account-events consumer process (``python -m tests.remote.account_proc URL LOG MARKER``).

Appends ``<pid> <execId>`` to LOG for every execution its handler sees; on execId ``crash`` it
dies at once (before the acknowledgement) unless MARKER exists, which it creates first: the
restarted process must get that execution again. Prints ``ready`` once its group is set up.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from hean.core.events import EventType
from hean.remote.account import AccountEvents


async def main(url: str, log: str, marker: str) -> None:
    events = AccountEvents(url, service="risk", consumer="risk-1", start_id="0", block_ms=20)

    def on_exec(ev: Any) -> None:
        for x in ev.executions:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {x.exec_id}\n")
            if x.exec_id == "crash" and not Path(marker).exists():
                Path(marker).touch()
                os._exit(3)  # killed before the acknowledgement

    events.on(EventType.EXECUTION, on_exec)
    await events.start()
    print("ready", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
