#!/usr/bin/env python3
"""An external trainer for sampleloop: scikit-learn gradient boosting instead of the built-in
logistic regression (docs/retraining.md, "Your own trainer").

It reads the `retrain-triggers` topic, exports exactly the samples of each trigger's snapshot
(`sampleloop export samples --snapshot`), trains a GradientBoostingClassifier on them, converts
it to ONNX with skl2onnx, and publishes it with `sampleloop models publish --snapshot`, so the
ledger records what the version was trained on. Only the sampleloop CLI is used: it works the same
against the embedded default (directly or through a running engine) and against Kafka.

    python trainer.py --sampleloop "sampleloop" --data-dir ./data --once

Triggers already handled are remembered in --state (a JSON file), so a second run does not train
them again; only the newest trigger of each category is trained (older ones are superseded).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow.parquet as pq
from sklearn.ensemble import GradientBoostingClassifier
from skl2onnx import to_onnx

# The columns of `export samples` that are not features (docs/cli.md, "export samples").
FIXED_COLUMNS = {"requestId", "category", "label", "labelSource", "predictedLabel", "modelVersion",
                 "origin", "revision", "requestTimestamp", "feedbackTimestamp"}
TRAINER_ID = "example-sklearn-gbt/1"


def sampleloop(args, cli):
    command = shlex.split(args.sampleloop) + cli
    if args.config:
        command += ["--config", args.config]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cli[:2])} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def pending_triggers(args, handled):
    """The newest unhandled trigger per category, in topic order."""
    out = sampleloop(args, ["consume", "retrain-triggers"])
    newest = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        trigger = json.loads(line)
        if trigger.get("triggerId") in handled:
            continue
        if args.category and trigger.get("category") != args.category:
            continue
        newest[trigger["category"]] = trigger
    return list(newest.values())


def holdout_mask(request_ids, fraction):
    """A deterministic holdout by request ID (the same rows every time the snapshot is trained)."""
    import hashlib
    return np.array([int.from_bytes(hashlib.sha256(r.encode()).digest()[:4], "big") / 2**32 < fraction for r in request_ids])


def train_on(args, trigger, workdir):
    category = trigger["category"]
    table_path = os.path.join(workdir, f"{category}-{trigger['triggerId']}.parquet")
    sampleloop(args, ["export", "samples", "--snapshot", json.dumps(trigger), "--out", table_path])
    table = pq.read_table(table_path).to_pandas()
    features = [c for c in table.columns if c not in FIXED_COLUMNS and not c.startswith("attributes.")]
    table = table.dropna(subset=features)
    if len(table) < args.min_samples or table["label"].nunique() < 2:
        print(f"{category}: {len(table)} usable samples, {table['label'].nunique()} classes: not training", file=sys.stderr)
        return None
    x = table[features].to_numpy(dtype=np.float32)
    y = table["label"].to_numpy()
    held = holdout_mask(table["requestId"], args.holdout)
    model = GradientBoostingClassifier(n_estimators=args.iterations, random_state=0)
    model.fit(x[~held], y[~held])
    accuracy = float((model.predict(x[held]) == y[held]).mean()) if held.any() else float("nan")
    # refit on every sample for the published model
    model.fit(x, y)
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    onnx_path = os.path.join(workdir, f"{category}-{trigger['triggerId']}.onnx")
    with open(onnx_path, "wb") as f:
        f.write(onx.SerializeToString())
    with open(onnx_path[:-5] + ".json", "w") as f:
        json.dump({"featureNames": features, "classes": [str(c) for c in model.classes_]}, f)
    metrics = ["--metric", f"trainSize={int((~held).sum())}", "--metric", f"holdoutSize={int(held.sum())}"]
    if held.any():
        metrics += ["--metric", f"holdoutAccuracy={accuracy}"]
    published = sampleloop(args, ["models", "publish", onnx_path, "--category", category, "--trainer", TRAINER_ID,
                                  "--snapshot", json.dumps(trigger), *metrics])
    return json.loads(published)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampleloop", default="sampleloop", help='how to run the CLI, e.g. "node bin/sampleloop.js"')
    parser.add_argument("--config", help="sampleloop configuration file")
    parser.add_argument("--data-dir", help="embedded mode: the engine's data dir")
    parser.add_argument("--category", help="only this category")
    parser.add_argument("--state", default="external-trainer-state.json", help="where handled trigger IDs are kept")
    parser.add_argument("--workdir", help="where snapshots and models are written (default: a temporary dir)")
    parser.add_argument("--min-samples", type=int, default=50)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--once", action="store_true", help="handle the pending triggers and exit")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    args = parser.parse_args()

    handled = set(json.load(open(args.state))) if os.path.exists(args.state) else set()
    workdir = args.workdir or tempfile.mkdtemp(prefix="sampleloop-external-")
    import time
    while True:
        for trigger in pending_triggers(args, handled):
            result = train_on(args, trigger, workdir)
            print(json.dumps({"triggerId": trigger["triggerId"], "category": trigger["category"], "published": result}), flush=True)
            handled.add(trigger["triggerId"])
            with open(args.state, "w") as f:
                json.dump(sorted(handled), f)
        if args.once:
            return
        time.sleep(args.poll_seconds)


if __name__ == "__main__":
    main()
