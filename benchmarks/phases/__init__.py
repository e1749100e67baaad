"""The phases of the operator benchmark, in the order `operator_bench.py` runs them: steady,
burst, floor, real (the real Dataset controller), scale, restart, idle, rss. Each module's
`run(bench, results)` adds its figures to `results` under its own name and logs them."""
