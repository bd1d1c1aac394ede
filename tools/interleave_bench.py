#!/usr/bin/env python3
"""Run two benchmark commands time-sliced on one machine, so both see the same machine.

The development machine is a shared 2-vCPU guest whose speed changes by up to 2x from one minute to
the next (docs/benchmarks.md, "The machine's speed varies"), so two benchmarks run one after the other
are measured on different machines. This runs both at once but lets only one run at a time: each
command's process group is stopped (SIGSTOP) and continued (SIGCONT) in turn, a slice of --slice
seconds each, for as long as it lives; a command whose partner has ended still gets every other slice.
Every command therefore runs half of the wall-clock time at any moment, and its own timers read about
twice its true step time. The ratio of the two figures is what this measures: both commands sampled
the machine's phases in the same slices.

    tools/interleave_bench.py --slice 0.2 \\
        -- /tmp/torch-venv/bin/python ../shared/bench/torch_peer.py --preset 110m --opt lomo --steps 3 \\
        -- bin/collie bench models/llama.collie --preset 110m --batch-size 4 --seq-len 256 --steps 3 --warmup 1

prints each command's last JSON line and the ratio of the second's tokens/s to the first's.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def tokens_per_second(line):
    d = json.loads(line)
    if "tokens_per_step" in d and d.get("step_s_median"):
        # the peer prints tokens_per_s rounded to one decimal (5.6 for 1b); its median step is exact
        return d["tokens_per_step"] / d["step_s_median"]
    return d.get("tokens_per_second", d.get("tokens_per_s"))


def last_json(path):
    lines = [l for l in open(path, encoding="utf-8").read().splitlines() if l.startswith("{")]
    return lines[-1] if lines else None


def main():
    argv = sys.argv[1:]
    if argv.count("--") != 2:
        sys.exit("usage: interleave_bench.py [--slice S] -- FIRST COMMAND -- SECOND COMMAND")
    first = argv.index("--")
    second = argv.index("--", first + 1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--slice", type=float, default=0.2, help="seconds each command runs before the other (0.2)")
    opts = ap.parse_args(argv[:first])
    commands = [argv[first + 1:second], argv[second + 1:]]
    outs = [tempfile.NamedTemporaryFile("w+", suffix=".out", delete=False) for _ in commands]
    procs = [subprocess.Popen(c, stdout=o, stderr=subprocess.DEVNULL, start_new_session=True)
             for c, o in zip(commands, outs)]

    def signal_group(p, sig):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass

    signal_group(procs[1], signal.SIGSTOP)
    active = 0
    try:
        while any(p.poll() is None for p in procs):
            p = procs[active]
            signal_group(p, signal.SIGCONT)
            time.sleep(opts.slice)
            signal_group(p, signal.SIGSTOP)
            active ^= 1
    finally:
        for p in procs:
            signal_group(p, signal.SIGCONT)
            if p.poll() is None:
                p.terminate()
    rates = []
    for c, o, p in zip(commands, outs, procs):
        line = last_json(o.name)
        print(json.dumps({"command": " ".join(c), "exit": p.returncode, "result": json.loads(line) if line else None}))
        rates.append(tokens_per_second(line) if line else None)
        os.unlink(o.name)
    if None not in rates:
        print(json.dumps({"second_over_first_tokens_per_second": rates[1] / rates[0]}))


if __name__ == "__main__":
    main()
