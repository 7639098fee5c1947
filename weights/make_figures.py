#!/usr/bin/env python3
"""Figures for weights/MODEL_CARD.md, read from a database where weights/train_default.sh ran:
training curves of the cxr_train calls that made the model (by name pattern, in the order they
ran) and a grid of attention overlays of the default model on test X-rays of both classes. Uses
psql (PG* environment).

    python3 weights/make_figures.py weights/ 'cxr_ckpt_%,cxr_long_%'"""
import base64
import io
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402


def psql(sql):
    out = subprocess.run(["psql", "-X", "-Atq", "-F", "\t", "-c", sql], check=True,
                         capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def curves(outdir, patterns):
    """The epochs of every cxr_train call whose model name matches one of the LIKE patterns, in
    the order they ran. A resumed call's history repeats the epochs before it; only its own are
    taken. Calls that restarted Adam (init_model without resume) are marked."""
    like = " OR ".join(f"m.name LIKE '{p}'" for p in patterns)
    rows = psql(f"""SELECT m.id, h.epoch, h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy,
                           coalesce((m.metrics->>'resumed')::boolean, false), m.metrics->>'init_model'
                    FROM cxr.training_history h JOIN cxr.models m ON m.id = h.model_id
                    WHERE ({like}) AND h.epoch >= coalesce((m.metrics->>'first_epoch')::int, 1)
                    ORDER BY m.id, h.epoch""")
    epochs, tl, ta, vl, va, restarts, last_id = [], [], [], [], [], [], None
    for mid, ep, a, b, c, d, resumed, init in rows:
        if mid != last_id and last_id is not None and resumed != "t":
            restarts.append(len(epochs) + 0.5)
        last_id = mid
        epochs.append(len(epochs) + 1)
        tl.append(float(a)); ta.append(float(b)); vl.append(float(c)); va.append(float(d))
    for what, (tr, va_), fname in (("loss (BCE)", (tl, vl), "training_loss.png"),
                                   ("accuracy", (ta, va), "training_accuracy.png")):
        plt.figure(figsize=(6, 4))
        plt.plot(epochs, tr, "o-", label="train (augmented, training mode)")
        plt.plot(epochs, va_, "s-", label="validation")
        for k, x in enumerate(restarts):
            plt.axvline(x, color="gray", lw=0.6, ls=":", label="new call, Adam restarted" if k == 0 else None)
        plt.xlabel("epoch (all cxr_train calls in order)")
        plt.ylabel(what)
        plt.title(f"alexnet_attn2 (scaled_dot) on the shared X-rays: {what}")
        plt.grid(alpha=0.3)
        plt.legend()
        plt.tight_layout()
        plt.savefig(f"{outdir}/{fname}", dpi=100)
        plt.close()
    print(f"{len(epochs)} epochs plotted")


def grid(outdir):
    rows = psql("""(SELECT file, label, cxr.covid_predict(image) FROM cxr_data.xrays
                    WHERE split = 'test' AND label ORDER BY md5(file) LIMIT 4)
                   UNION ALL
                   (SELECT file, label, cxr.covid_predict(image) FROM cxr_data.xrays
                    WHERE split = 'test' AND NOT label ORDER BY md5(file) LIMIT 4)""")
    fig, axes = plt.subplots(3, len(rows), figsize=(2.2 * len(rows), 7))
    for col, (file, label, p) in enumerate(rows):
        for row, layer in enumerate((None, 3, 4)):
            if layer is None:
                sql = f"SELECT translate(encode(image, 'base64'), E'\\n', '') FROM cxr_data.xrays WHERE file = '{file}'"
            else:
                sql = f"SELECT translate(encode(cxr.attention_overlay(image, {layer}), 'base64'), E'\\n', '') FROM cxr_data.xrays WHERE file = '{file}'"
            img = Image.open(io.BytesIO(base64.b64decode(psql(sql)[0][0])))
            ax = axes[row][col]
            ax.imshow(img, cmap="gray" if layer is None else None)
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{'COVID' if label == 't' else 'normal'}\np={float(p):.3f}", fontsize=9)
            if col == 0:
                ax.set_ylabel(["X-ray", "attention 3 (17x17)", "attention 4 (8x8)"][row], fontsize=9)
    plt.tight_layout()
    plt.savefig(f"{outdir}/attention_grid.png", dpi=90)
    plt.close()
    print("attention grid written:", ", ".join(r[0] for r in rows))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "weights"
    curves(out, sys.argv[2].split(",") if len(sys.argv) > 2 else ["cxr_ckpt_%", "cxr_long_%"])
    grid(out)
