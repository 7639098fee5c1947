#!/usr/bin/env python3
"""The random forest against scikit-learn on the shared X-rays, in one run: the same features
(cxr.cxr_image_pixels at the feature grid, exported from SQL), the same hyperparameters, three
seeds, at 1 and 2 threads. Prints a markdown table: fit seconds, test accuracy, and scoring
time per image (sklearn's predict_proba on one row; SQL covid_predict, decode and resize
included, against the alexnet_attn2 'default' model in the same run).

    bench/forest_vs_sklearn.sh [GRID ...]     (a database with cxr_data.xrays: PG* environment)

Needs python3-sklearn. Fit times are the fit alone: for cxr_train, metrics->'fit_seconds'."""
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

SEEDS = (1, 2, 3)
TREES = 100


def psql(sql, *settings):
    cmd = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-Atq"]
    for s in settings:
        cmd += ["-c", s]
    cmd += ["-c", sql]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def features(grid):
    out = psql(f"COPY (SELECT split, label::int, array_to_string(cxr.cxr_image_pixels(image, {grid}), ' ') "
               f"FROM cxr_data.xrays ORDER BY file) TO STDOUT")
    split, y, X = [], [], []
    for line in out.splitlines():
        s, lab, px = line.split("\t")
        split.append(s)
        y.append(int(lab))
        X.append(np.array(px.split(" "), dtype=np.float32))
    return np.array(split), np.array(y), np.stack(X)


def timed_sql(sql, *settings):
    """seconds of one statement, measured by the server (EXPLAIN ANALYZE's execution time)"""
    out = psql("EXPLAIN (ANALYZE, FORMAT json) " + sql, *settings)
    return json.loads(out)[0]["Execution Time"] / 1000.0


def main():
    grids = [int(g) for g in sys.argv[1:]] or [64]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"CPU: {cpu} ({platform.machine()}), {os.cpu_count()} cores; {TREES} trees, seeds {SEEDS}\n")
    print("| grid | threads | fit s: cxr / sklearn (speed-up) | test accuracy: cxr mean (seeds) / sklearn mean (seeds) |")
    print("|---|---|---|---|")
    scoring = []
    for grid in grids:
        split, y, X = features(grid)
        tr, te = split == "train", split == "test"
        for threads in (1, 2):
            cxr_fit, cxr_acc, sk_fit, sk_acc = [], [], [], []
            for seed in SEEDS:
                rf = RandomForestClassifier(n_estimators=TREES, random_state=seed, n_jobs=threads)
                t0 = time.perf_counter()
                rf.fit(X[tr], y[tr])
                sk_fit.append(time.perf_counter() - t0)
                sk_acc.append(float(np.mean((rf.predict_proba(X[te])[:, 1] >= 0.5) == y[te])))
                name = f"bench_rf_{grid}_{threads}_{seed}"
                psql(f"""SELECT count(*) FROM cxr.cxr_train('{name}',
                           $$SELECT image, label FROM cxr_data.xrays WHERE split = 'train'$$,
                           'random_forest', seed => {seed},
                           params => '{{"n_estimators": {TREES}, "feature_grid": {grid}}}')""",
                     f"SET cxr_attn.training_threads = {threads}", "SET client_min_messages = warning")
                cxr_fit.append(float(psql(f"SELECT metrics->>'fit_seconds' FROM cxr.current_models WHERE name = '{name}'")))
                cxr_acc.append(float(psql(f"""SELECT accuracy FROM cxr.cxr_evaluate('{name}',
                                   $$SELECT image, label FROM cxr_data.xrays WHERE split = 'test'$$)""")))
            fc, fs = np.mean(cxr_fit), np.mean(sk_fit)
            print(f"| {grid} | {threads} | {fc:.2f} / {fs:.2f} ({fs / fc:.1f}x) | "
                  f"{100 * np.mean(cxr_acc):.2f} ({', '.join(f'{100 * a:.1f}' for a in cxr_acc)}) / "
                  f"{100 * np.mean(sk_acc):.2f} ({', '.join(f'{100 * a:.1f}' for a in sk_acc)}) |")
        # scoring one image at a time: sklearn's predict_proba on one row (n_jobs = threads), SQL
        # covid_predict per row (decode + resize + trees; cxr_attn.scoring_threads = threads) and
        # the alexnet_attn2 default model
        n = int(te.sum())
        q = "SELECT sum(cxr.covid_predict(image, '{m}')) FROM cxr_data.xrays WHERE split = 'test'"
        for threads in (1, 2):
            rf = RandomForestClassifier(n_estimators=TREES, random_state=1, n_jobs=threads).fit(X[tr], y[tr])
            rows = X[te][:100]
            t0 = time.perf_counter()
            for r in rows:
                rf.predict_proba(r[None, :])
            sk_ms = (time.perf_counter() - t0) / len(rows) * 1000
            st = f"SET cxr_attn.scoring_threads = {threads}"
            timed_sql(q.format(m=f"bench_rf_{grid}_1_1"), st)  # warm the model cache
            rf_ms = timed_sql(q.format(m=f"bench_rf_{grid}_1_1"), st) / n * 1000
            net_ms = timed_sql(q.format(m="default"), st) / n * 1000
            scoring.append((grid, threads, rf_ms, net_ms, sk_ms, n))
    print("\n| grid | threads | SQL covid_predict ms/image: forest / alexnet_attn2 (forest speed-up) | sklearn predict_proba, one row, ms (SQL forest speed-up) |")
    print("|---|---|---|---|")
    for grid, threads, rf_ms, net_ms, sk_ms, n in scoring:
        print(f"| {grid} | {threads} | {rf_ms:.2f} / {net_ms:.2f} ({net_ms / rf_ms:.1f}x), {n} test X-rays | "
              f"{sk_ms:.2f} ({sk_ms / rf_ms:.1f}x) |")
    for grid in grids:
        for threads in (1, 2):
            for seed in SEEDS:
                psql(f"SELECT cxr.cxr_model_drop('bench_rf_{grid}_{threads}_{seed}')")


if __name__ == "__main__":
    main()
