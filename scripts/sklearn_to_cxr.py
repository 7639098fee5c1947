#!/usr/bin/env python3
"""Converts a fitted scikit-learn RandomForestClassifier into a cxr_attn model file.

    python3 scripts/sklearn_to_cxr.py FOREST.pickle random_forest.safetensors --grid 64

The forest must have been fitted on cxr_attn's forest features: the 8-bit gray levels of each
X-ray resized to grid x grid, row by row, as cxr.cxr_image_pixels(image, grid) returns them,
with classes 0/1 or False/True (1 = COVID-19). Load the file with cxr.cxr_model_import
(README.md, "The random forest"); covid_predict then gives predict_proba(X)[:, 1].

Thresholds: scikit-learn compares a float32 feature with a float64 threshold; the file holds
float32 thresholds, each rounded down to the largest float32 not above it, which sends every
float32 feature the same way. Leaf values are each leaf's class-1 fraction.
"""
import argparse
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cxr_safetensors import save_safetensors  # noqa: E402


def float32_at_most(t):
    """The largest float32 <= t, elementwise."""
    f = t.astype(np.float32)
    over = f.astype(np.float64) > t
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def forest_tensors(forest, grid):
    if list(forest.classes_) not in ([0, 1], [False, True]):
        sys.exit(f"the forest's classes are {list(forest.classes_)}, not 0/1")
    if forest.n_features_in_ != grid * grid:
        sys.exit(f"the forest has {forest.n_features_in_} features, not {grid}x{grid}")
    offsets, feature, threshold, left, right, value = [0], [], [], [], [], []
    for est in forest.estimators_:
        t = est.tree_
        leaf = t.children_left == -1
        counts = t.value[:, 0, :]
        feature.append(np.where(leaf, -1, t.feature).astype(np.int32))
        threshold.append(np.where(leaf, 0, float32_at_most(t.threshold)).astype(np.float32))
        left.append(t.children_left.astype(np.int32))
        right.append(t.children_right.astype(np.int32))
        value.append((counts[:, 1] / counts.sum(axis=1)).astype(np.float32))
        offsets.append(offsets[-1] + t.node_count)
    return {
        "tree_offsets": np.array(offsets, dtype=np.int64),
        "feature": np.concatenate(feature),
        "threshold": np.concatenate(threshold),
        "children_left": np.concatenate(left),
        "children_right": np.concatenate(right),
        "value": np.concatenate(value),
        "feature_importances": forest.feature_importances_.astype(np.float32),
    }


def forest_metadata(forest, grid):
    p = forest.get_params()
    mf = p["max_features"]
    mf = "sqrt" if mf == "auto" else mf  # scikit-learn < 1.3: "auto" is "sqrt" for classifiers
    return {
        "format": "pt",
        "arch": "random_forest",
        "input_size": str(grid),
        "n_estimators": str(len(forest.estimators_)),
        "max_depth": "null" if p["max_depth"] is None else str(p["max_depth"]),
        "min_samples_split": str(p["min_samples_split"]),
        "min_samples_leaf": str(p["min_samples_leaf"]),
        "max_features": "null" if mf is None else str(mf),
        "bootstrap": "true" if p["bootstrap"] else "false",
    }


def save_forest(forest, grid, path):
    save_safetensors(path, forest_tensors(forest, grid), forest_metadata(forest, grid))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("forest", help="a pickled RandomForestClassifier")
    ap.add_argument("out")
    ap.add_argument("--grid", type=int, default=64, help="the feature grid's side (8..512)")
    args = ap.parse_args()
    with open(args.forest, "rb") as f:
        forest = pickle.load(f)
    save_forest(forest, args.grid, args.out)
    print(f"wrote {args.out}: {len(forest.estimators_)} trees on a {args.grid}x{args.grid} grid")


if __name__ == "__main__":
    main()
