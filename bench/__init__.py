"""Benchmarks of the performance targets (SPEC "Performance targets"); run with `make bench`, never by `make test`."""
