#!/usr/bin/env python3
"""scikit-learn oracle for the random forest's interchange test (test/t/forest.sh).

    forest_reference.py FEATURES.tsv GRID OUT_DIR

FEATURES.tsv: file, split, label (0/1), the space-separated levels of cxr.cxr_image_pixels
(image, GRID), as exported from SQL. Fits two RandomForestClassifiers on the 'train' rows (the
defaults with 30 trees; and a depth-limited one without bootstrap, max_features a fraction),
converts each with scripts/sklearn_to_cxr.py into OUT_DIR/{a,b}.safetensors, and writes
OUT_DIR/{a,b}.proba: file and predict_proba[:, 1] of every 'test' row, to 17 digits."""
import os
import sys

import numpy as np
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from sklearn_to_cxr import save_forest  # noqa: E402


def main():
    path, grid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files, split, y, X = [], [], [], []
    for line in open(path):
        f, s, lab, px = line.rstrip("\n").split("\t")
        files.append(f)
        split.append(s)
        y.append(int(lab))
        X.append(np.array(px.split(" "), dtype=np.float32))
    files, split, y, X = np.array(files), np.array(split), np.array(y), np.stack(X)
    assert X.shape[1] == grid * grid
    tr, te = split == "train", split == "test"
    forests = {
        "a": RandomForestClassifier(n_estimators=30, random_state=0),
        "b": RandomForestClassifier(n_estimators=12, max_depth=5, max_features=0.3, bootstrap=False,
                                    min_samples_leaf=3, random_state=1),
    }
    for key, rf in forests.items():
        rf.fit(X[tr], y[tr])
        save_forest(rf, grid, os.path.join(out, f"{key}.safetensors"))
        with open(os.path.join(out, f"{key}.proba"), "w") as f:
            for name, p in zip(files[te], rf.predict_proba(X[te])[:, 1]):
                f.write(f"{name}\t{p:.17g}\n")


if __name__ == "__main__":
    main()
