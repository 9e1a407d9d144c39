"""Synthetic-weights files, one generator per kind (`kinds` lists them): real native architectures
with deterministic random weights, for tests, the demo and the benchmarks. Their pictures are noise.
Used only by `synth-model`, tests, bench and the demo; nothing on the serving path imports it."""
