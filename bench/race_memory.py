"""``python -m bench.race_memory SIDE SIZE``: one race of SIZE legs in a fresh process, then the memory it holds.

SIDE is ``processes`` (ours, one adapter process per leg: the orchestrator plus its children), ``inprocess`` (ours,
every leg's server in the orchestrator's process) or ``litellm`` (its fastest-response router, one process). Prints
``{"rss_mib": ...}``: the resident set summed over the process and its children, after the race (the servers warm,
as a resident service keeps them). The emulator's base URLs and keys come from the environment.
"""

from __future__ import annotations

import json
import sys

import anyio
import psutil

from .peers_bench import PROMPT, _legs, _router


def _rss_mib() -> float:
    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


async def _ours(size: int, inprocess: bool) -> float:
    from llmmixer.orchestrator.config import Config, ServerSpec, Settings, default_servers
    from llmmixer.orchestrator.runs import Runs
    from llmmixer.orchestrator.stores import open_store

    legs = _legs(size)
    builtin = default_servers()
    servers = {name: ServerSpec(name=name, source=name, command=builtin[source].command,
                                args=list(builtin[source].args), passthrough=builtin[source].passthrough,
                                inprocess=inprocess)
               for name, source in legs}
    config = Config(servers=servers, settings=Settings(models=[name for name, _ in legs]))
    async with Runs(config, open_store("memory")) as runs:
        run_id = await runs.start_ask(PROMPT, models=",".join(name for name, _ in legs), mode="race")
        await runs.wait(run_id, 120)
        return _rss_mib()


async def _litellm(size: int) -> float:
    import os
    from types import SimpleNamespace

    router = _router(SimpleNamespace(env=dict(os.environ)), _legs(size))
    await router.abatch_completion_fastest_response(model=",".join(name for name, _ in _legs(size)),
                                                     messages=[{"role": "user", "content": PROMPT}])
    return _rss_mib()


def main() -> None:
    side, size = sys.argv[1], int(sys.argv[2])
    rss = anyio.run(_litellm, size) if side == "litellm" else anyio.run(_ours, size, side == "inprocess")
    print(json.dumps({"rss_mib": round(rss, 1)}))


if __name__ == "__main__":
    main()
