"""`python -m tests.benchmarks`: the benchmark suite (see suite.py)."""

from tests.benchmarks.suite import main

main()
