"""Scripts that print figures (see benchmarks/README.md); `crashloop` is also run by the tests."""
