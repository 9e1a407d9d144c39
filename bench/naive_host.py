"""What a naive host runs for every image: a fresh process that loads the model through the
binding, generates one image and saves it. Used by bench/throughput.py.

Run: python -m bench.naive_host MODEL OUT.png JOB_JSON THREADS
"""

from __future__ import annotations

import json
import sys

from .common import direct_generate, direct_model

if __name__ == "__main__":
    model, out, job, threads = sys.argv[1:]
    direct_generate(direct_model(model, int(threads)), json.loads(job)).save(out)
