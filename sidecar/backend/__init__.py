"""The native backend as `initialize` reports it: the probe (a worker that loads the library once),
started early so that it overlaps the front's imports; the frozen binary's bundled library; the
binary's self-test. Imports `rpc` and `worker` only."""
