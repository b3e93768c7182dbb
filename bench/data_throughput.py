"""Records/s of ``data validate`` and ``data.load`` on a generated 100,000-record file.

    python bench/data_throughput.py [--n 100000] [--out results.json]

One process, one core. The file mixes the formats the loader reads, with Korean text of
realistic length (about 300 characters per record) and 1% bad lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

SYS = "들어오는 문장을 조세호 스타일 답변으로 생성"
Q = "요즘 점심값이 너무 올라서 고민인데 도시락을 싸 다니는 게 정말 더 싸게 먹힐까요?"
GOOD = "아이고~ 점심값이요? 음음음~ 제가 어제 김밥 한 줄을 먹었는데요~ 도시락 싸는 게 진짜 더 싸~게 먹히는 건가요?"
BAD = "요즘 점심값이 비싼데 도시락을 싸 다니면 더 저렴할까요?"


def make(n: int, path: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            k = rng.random()
            q = f"{Q} ({i})"
            if k < 0.01:
                f.write('{"prompt": "broken\n')
                continue
            if k < 0.5:
                r = {"input": {"messages": [{"role": "system", "content": SYS}, {"role": "user", "content": q}]},
                     "preferred_output": [{"role": "assistant", "content": GOOD}],
                     "non_preferred_output": [{"role": "assistant", "content": BAD}]}
            elif k < 0.7:
                r = {"prompt": q, "chosen": GOOD, "rejected": BAD}
            elif k < 0.85:
                r = {"chosen": f"\n\nHuman: {q}\n\nAssistant: {GOOD}", "rejected": f"\n\nHuman: {q}\n\nAssistant: {BAD}"}
            else:
                r = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": GOOD, "weight": 1}]}
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--out")
    ap.add_argument("--repeat", type=int, default=5, help="validate runs; the median is reported")
    a = ap.parse_args()
    from data import load
    from data.validate import validate_file

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "bench.jsonl"
        make(a.n, p)
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            rep = validate_file(p, keep=False)
            times.append(time.perf_counter() - t)
        times.sort()
        t_val = times[len(times) // 2]
        t = time.perf_counter()
        ds = load(p, task="sft", on_error="skip", emit=lambda i: None)
        t_load = time.perf_counter() - t
    res = {
        "records": a.n, "valid": rep.valid, "errors": rep.errors,
        "validate_records_per_s": round(a.n / t_val), "validate_records_per_s_best": round(a.n / times[0]), "load_records_per_s": round(a.n / t_load),
        "load_rows": len(ds), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpu": os.cpu_count(),
    }
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
