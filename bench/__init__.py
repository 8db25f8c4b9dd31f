"""taube benchmarks: ``python -m bench WORKLOAD [options]``.

Each workload is a module of this package with ``add_arguments(parser)`` and
``run(args) -> int``; ``bench.__main__`` lists them. A workload that needs a
server starts its own ``taube serve`` on loopback and stops it when done;
results go as JSON under ``bench/results/``.
"""
