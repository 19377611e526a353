"""Run the benchmarks and print the results table: `python -m bench.run [name ...]` (`make bench` runs them all)."""

import sys
import time

from .common import django_setup, table

BENCHMARKS = ["generate", "upload", "cycle", "hot_redeem", "export", "changelist", "http", "webhooks", "campaign"]


def main(argv: list[str]) -> int:
    chosen = argv or BENCHMARKS
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
        return 2
    django_setup()
    import importlib

    results = []
    for name in chosen:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.perf_counter()
        print(f"== {name} ...", flush=True)
        outcome = module.run()
        for result in outcome if isinstance(outcome, list) else [outcome]:
            print("   " + result.row(), flush=True)
            results.append(result)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
