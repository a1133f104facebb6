#!/usr/bin/env python3
"""Dev-time oracle for bench/rewards_bench.cpp: runs pip's math-verify (Hugging Face) on the same
pairs and prints the same JSON lines, so docs/PERF.md can record the ratio. Not part of the product.

    build/bench/rewards_bench --write-pairs /tmp/pairs.jsonl > ours.jsonl
    python3 bench/math_verify_oracle.py /tmp/pairs.jsonl > theirs.jsonl
    build/bench/rewards_bench --oracle theirs.jsonl

The gold is given to math-verify as \\boxed{gold} (its most reliable extraction for a bare answer),
the prediction as it is; one verification = parse(gold) + parse(pred) + verify(), single process,
math-verify's default configs and timeouts. --agreement FILE also writes each pair's verdict.
"""
import argparse
import json
import sys
import time

from math_verify import parse, verify


def run(pairs, seconds):
    calls, correct, rounds = 0, 0, 0
    verdicts = []
    t0 = time.perf_counter()
    while True:
        correct = 0
        verdicts = []
        for gold, pred in pairs:
            try:
                ok = bool(verify(parse("\\boxed{" + gold + "}"), parse(pred)))
            except Exception:  # math-verify may raise on odd input; count it as not correct
                ok = False
            correct += ok
            verdicts.append(ok)
        calls += len(pairs)
        rounds += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return calls / elapsed, correct, rounds, verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("pairs", help="JSONL rows {set, gold, pred} from rewards_bench --write-pairs")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum time per figure")
    ap.add_argument("--agreement", help="write {set, index, correct} per pair here")
    args = ap.parse_args()
    sets = {}
    with open(args.pairs, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                sets.setdefault(row["set"], []).append((row["gold"], row["pred"]))
    try:
        from importlib.metadata import version
        impl = "math-verify " + version("math-verify")
    except Exception:
        impl = "math-verify"
    out = open(args.agreement, "w", encoding="utf-8") if args.agreement else None
    for name, pairs in sets.items():
        per_s, correct, rounds, verdicts = run(pairs, args.seconds)
        print(json.dumps({"figure": "verify_" + name, "impl": impl, "value": per_s,
                          "unit": "verifications/s/core", "floor": 2000, "ratio": per_s / 2000,
                          "pairs": len(pairs), "correct": correct, "rounds": rounds}))
        sys.stdout.flush()
        if out:
            for i, ok in enumerate(verdicts):
                out.write(json.dumps({"set": name, "index": i, "correct": ok}) + "\n")
    if out:
        out.close()


if __name__ == "__main__":
    main()
