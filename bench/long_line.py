"""One very long line through `llmlab tokenizer encode`: peak memory and time, ours (chunked) vs HF `tokenizers`.

The line is gutenberg_en's train.txt with its line ends turned into spaces, repeated to `--mb` MB (default
50): one line, no newline inside. Each tokenizer (WordPiece, byte-level BPE, Unigram at vocab 8000, trained
here on the same text) encodes it in a fresh child process:
- llmlab: the CLI itself (`llmlab.cli.main(["tokenizer", "encode", ...])`), which cuts the line at
  pre-tokenizer boundaries (`llmlab.tokenizer.long_lines`) and streams the ids to a file;
- HF: `Tokenizer.from_file(...).encode(line)` on the same tokenizer.json, the ids written the same way.
Peak memory is the child's VmHWM (/proc/self/status), imports included; `base` is the child's resident set
after its imports. The ids of the two are compared (they must be equal). Ratios are llmlab / HF.

    python bench/long_line.py                 # 50 MB, the three models (several minutes)
    python bench/long_line.py --mb 5 --only bpe
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # keep HF's `tokenizers` importable

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "gutenberg_en" / "train.txt"
MODELS = ("wordpiece", "bpe", "unigram")

CHILD = """
import hashlib, json, sys, time
def status(field):
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith(field + ":")).split()[1]) / 1024
which, tok, line, out = sys.argv[1:5]
if which == "llmlab":
    from llmlab.cli import main
    base = status("VmRSS")
    start = time.perf_counter()
    code = main(["tokenizer", "encode", "--tokenizer", tok, "--input", line, "--output", out])
    assert code == 0
else:
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(tok)
    base = status("VmRSS")
    start = time.perf_counter()
    with open(line, encoding="utf-8") as f:
        text = f.read().rstrip("\\n")
    ids = t.encode(text).ids
    with open(out, "w", encoding="utf-8") as f:
        f.write(" ".join(map(str, ids)) + "\\n")
seconds = time.perf_counter() - start
digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
print(json.dumps({"seconds": seconds, "peak_mib": status("VmHWM"), "base_mib": base, "sha256": digest}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_line(path: Path, mb: int) -> None:
    text = DATA.read_text(encoding="utf-8").replace("\n", " ")
    with path.open("w", encoding="utf-8") as f:
        written = 0
        while written < mb * 1_000_000:
            part = text[: mb * 1_000_000 - written]
            f.write(part)
            written += len(part.encode("utf-8"))
        f.write("\n")


def train(model: str, folder: Path) -> Path:
    from llmlab.cli import main

    out = folder / f"{model}.json"
    args = ["tokenizer", "train", "--model", model, "--vocab-size", "8000", "--quiet", "-o", str(out)]
    with contextlib.redirect_stdout(sys.stderr):
        assert main([*args, str(DATA)]) == 0
    return out


def child(which: str, tok: Path, line: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, which, str(tok), str(line), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RAYON_NUM_THREADS": "1"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"no data at {DATA}; nothing to measure")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        line = folder / "line.txt"
        make_line(line, args.mb)
        log(f"a {line.stat().st_size / 1e6:.1f} MB single line")
        for model in args.only:
            tok = train(model, folder)
            result = {}
            for which in ("llmlab", "hf"):
                log(f"{model}: {which} ...")
                started = time.perf_counter()
                result[which] = child(which, tok, line, folder / f"{which}.ids")
                log(f"{model}: {which} done in {time.perf_counter() - started:.0f} s")
            same = result["llmlab"]["sha256"] == result["hf"]["sha256"]
            rows.append(
                {
                    "model": model,
                    "mb": args.mb,
                    "same_ids": same,
                    **{
                        f"{w}_{k}": result[w][k]
                        for w in ("llmlab", "hf")
                        for k in ("seconds", "peak_mib", "base_mib")
                    },
                }
            )
    print(
        f"{'model':<10}{'MB':>5}{'ours peak MiB':>15}{'(base)':>8}{'HF peak MiB':>13}{'(base)':>8}"
        f"{'peak ratio':>12}{'ours s':>8}{'HF s':>7}{'same ids':>10}"
    )
    for r in rows:
        print(
            f"{r['model']:<10}{r['mb']:>5}{r['llmlab_peak_mib']:>15.0f}{r['llmlab_base_mib']:>8.0f}"
            f"{r['hf_peak_mib']:>13.0f}{r['hf_base_mib']:>8.0f}{r['llmlab_peak_mib'] / r['hf_peak_mib']:>12.2f}"
            f"{r['llmlab_seconds']:>8.1f}{r['hf_seconds']:>7.1f}{'yes' if r['same_ids'] else 'NO':>10}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
