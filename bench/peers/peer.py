"""
The peers' side of `pnpm bench:peers` (bench/peers/run.ts): the same workloads as
bench/peers/cairn.ts and cairn-flow.ts, on Prefect 3 or Apache Hamilton, in the bench-only
venv (.venv-peers). Prints one JSON line last.

    python bench/peers/peer.py prefect|hamilton overhead TASKS
    python bench/peers/peer.py prefect|hamilton makespan TASKS CONCURRENCY SLEEP_MS
    python bench/peers/peer.py prefect|hamilton cache GROUPS LAYERS WIDTH WORK_MS CHANGED_GROUP
    python bench/peers/peer.py prefect|hamilton start

Each task that runs appends its id to $PEERS_LOG (the harness checks which tasks ran);
`start` writes the epoch ms of its first task to $PEERS_MARK. Prefect runs on its own
temporary server (PREFECT_HOME, results and storage in the harness's temp folder);
Hamilton caches in $PEERS_STATE.
"""
import json
import os
import sys
import time

engine, workload, *args = sys.argv[1:]
WIDTH = 100
log_path = os.environ.get("PEERS_LOG")
state = os.environ.get("PEERS_STATE", ".")


def note(task_id):
    if log_path:
        with open(log_path, "a") as f:
            f.write(task_id + "\n")


def busy(ms):
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def layered(total, width):
    """[(id, [dep ids])] of the layered DAG of bench/engine-overhead.ts."""
    nodes, previous, made = [], [], 0
    while made < total:
        layer = []
        for i in range(width):
            if made >= total:
                break
            deps = sorted({previous[i % len(previous)], previous[(i * 7 + 3) % len(previous)]}) if previous else []
            nid = f"n{made}"
            nodes.append((nid, deps))
            layer.append(nid)
            made += 1
        previous = layer
    return nodes


def makespan_dag(total):
    """bench/peers/cairn.ts's makespanDag(): 10 layers, two deps drawn by the same LCG."""
    seed = 12345

    def random():
        nonlocal seed
        seed = (seed * 1664525 + 1013904223) % 2**32
        return seed / 2**32

    per = -(-total // 10)
    nodes, previous, made = [], [], 0
    for _ in range(10):
        layer = []
        for _ in range(per):
            if made >= total:
                break
            deps = []
            if previous:
                a = previous[int(random() * len(previous))]
                b = previous[int(random() * len(previous))]
                deps = [a] if a == b else [a, b]
            nid = f"s{made}"
            nodes.append((nid, deps))
            layer.append(nid)
            made += 1
        previous = layer
    return nodes


def cache_dag(groups, layers, width):
    """[(id, group, layer, [dep ids])]: per group, layers of `width`, 2 deps in the layer before."""
    nodes = []
    for g in range(groups):
        for l in range(layers):
            for k in range(width):
                deps = sorted({f"w{g}_{l-1}_{k}", f"w{g}_{l-1}_{(k * 7 + 3) % width}"}) if l else []
                nodes.append((f"w{g}_{l}_{k}", g, l, deps))
    return nodes


# --- Hamilton: the DAG as a generated module, one function per node -------------------------


def hamilton_module(source):
    import importlib.util
    import tempfile

    d = tempfile.mkdtemp(prefix="peers-hamilton-")
    path = os.path.join(d, "peers_dag.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("peers_dag", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["peers_dag"] = mod
    spec.loader.exec_module(mod)
    return mod


def hamilton_driver(mod, adapter=None, cache=False):
    from hamilton import driver

    b = driver.Builder().with_modules(mod)
    if adapter is not None:
        b = b.with_adapters(adapter)
    if cache:
        b = b.with_cache(path=os.path.join(state, "hamilton-cache"))
    return b.build()


def hamilton_run(workload, args):
    header = "import time, os\nfrom bench_helpers import busy, note\n"
    sys.modules["bench_helpers"] = sys.modules[__name__]
    if workload == "overhead":
        total = int(args[0])
        nodes = layered(total, WIDTH)
        src = header + "".join(f"def {n}({''.join(d + ': bool, ' for d in deps)}) -> bool:\n    return True\n" for n, deps in nodes)
        mod = hamilton_module(src)
        t = time.perf_counter()
        dr = hamilton_driver(mod)
        dr.execute([n for n, _ in nodes])
        return {"tasks": total, "insideMs": (time.perf_counter() - t) * 1000}
    if workload == "makespan":
        from hamilton.plugins import h_threadpool

        total, conc, ms = int(args[0]), int(args[1]), int(args[2])
        nodes = makespan_dag(total)
        src = header + "".join(f"def {n}({''.join(d + ': bool, ' for d in deps)}) -> bool:\n    time.sleep({ms}/1000)\n    return True\n" for n, deps in nodes)
        mod = hamilton_module(src)
        dr = hamilton_driver(mod, adapter=h_threadpool.FutureAdapter(max_workers=conc))
        t = time.perf_counter()
        dr.execute([n for n, _ in nodes])
        return {"tasks": total, "insideMs": (time.perf_counter() - t) * 1000}
    if workload == "cache":
        groups, layers, width, ms, changed = (int(a) for a in args[:5])
        nodes = cache_dag(groups, layers, width)
        src = header
        for n, g, l, deps in nodes:
            params = ", ".join([f"{d}: int" for d in deps] + ([f"seed_{g}: int"] if l == 0 else []))
            value = " + ".join(deps) if deps else f"seed_{g}"
            src += f"def {n}({params}) -> int:\n    busy({ms})\n    note('{n}')\n    return ({value} + {l}) % 1000003\n"
        mod = hamilton_module(src)
        t = time.perf_counter()
        dr = hamilton_driver(mod, cache=True)
        dr.execute([n for n, *_ in nodes], inputs={f"seed_{g}": (1 if g == changed else 0) for g in range(groups)})
        return {"tasks": len(nodes), "insideMs": (time.perf_counter() - t) * 1000}
    if workload == "start":
        mod = hamilton_module(header + "def first() -> bool:\n    open(os.environ['PEERS_MARK'], 'w').write(str(time.time() * 1000))\n    return True\n")
        hamilton_driver(mod).execute(["first"])
        return {}
    raise SystemExit(f"unknown workload {workload}")


# --- Prefect: tasks submitted to a thread pool from a flow, futures as dependencies ---------


def prefect_run(workload, args):
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    if workload == "start":

        @task
        def first():
            open(os.environ["PEERS_MARK"], "w").write(str(time.time() * 1000))
            return True

        @flow
        def start():
            return first()

        start()
        return {}

    @flow
    def warmup():
        return True

    # The first flow starts the temporary server; the timed flow runs after it.
    warmup()

    if workload in ("overhead", "makespan"):
        if workload == "overhead":
            total, conc, ms = int(args[0]), 8, 0
            nodes = layered(total, WIDTH)
        else:
            total, conc, ms = int(args[0]), int(args[1]), int(args[2])
            nodes = makespan_dag(total)

        @task
        def step(deps):
            if ms:
                time.sleep(ms / 1000)
            return True

        @flow(task_runner=ThreadPoolTaskRunner(max_workers=conc))
        def dag():
            futures = {}
            for n, deps in nodes:
                futures[n] = step.submit([futures[d] for d in deps])
            for f in futures.values():
                f.result()

        t = time.perf_counter()
        dag()
        return {"tasks": total, "insideMs": (time.perf_counter() - t) * 1000}

    if workload == "cache":
        from prefect.cache_policies import INPUTS, TASK_SOURCE

        groups, layers, width, ms, changed = (int(a) for a in args[:5])
        nodes = cache_dag(groups, layers, width)

        @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
        def work(tid, l, seed, deps):
            busy(ms)
            note(tid)
            return (sum(deps) + seed + l) % 1000003

        @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
        def cached():
            futures = {}
            for n, g, l, deps in nodes:
                futures[n] = work.submit(n, l, (1 if g == changed else 0) if l == 0 else 0, [futures[d] for d in deps])
            for f in futures.values():
                f.result()

        t = time.perf_counter()
        cached()
        return {"tasks": len(nodes), "insideMs": (time.perf_counter() - t) * 1000}
    raise SystemExit(f"unknown workload {workload}")


if engine == "hamilton":
    result = hamilton_run(workload, args)
elif engine == "prefect":
    result = prefect_run(workload, args)
else:
    raise SystemExit(f"unknown engine {engine}: expected prefect or hamilton")
print(json.dumps({"engine": engine, "workload": workload, **result}))
