#!/usr/bin/env python3
"""Figures for weights/MODEL_CARD.md, read from a database where weights/train_default.sh ran:
training curves of the chained runs (cxr_ckpt_1, cxr_ckpt_2, ...) and a grid of attention
overlays of the default model on test X-rays of both classes. Uses psql (PG* environment).

    python3 weights/make_figures.py weights/"""
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


def curves(outdir):
    rows = psql("""SELECT m.name, h.epoch, h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy
                   FROM cxr.training_history h JOIN cxr.models m ON m.id = h.model_id
                   WHERE m.name LIKE 'cxr_ckpt_%'
                   ORDER BY split_part(m.name, '_', 3)::int, h.epoch""")
    epochs, tl, ta, vl, va, offset, last_name, last_epoch = [], [], [], [], [], 0, None, 0
    for name, ep, a, b, c, d in rows:
        if name != last_name:
            offset, last_name = offset + last_epoch, name
        last_epoch = int(ep)
        epochs.append(offset + int(ep))
        tl.append(float(a)); ta.append(float(b)); vl.append(float(c)); va.append(float(d))
    for what, (tr, va_), fname in (("loss (BCE)", (tl, vl), "training_loss.png"),
                                   ("accuracy", (ta, va), "training_accuracy.png")):
        plt.figure(figsize=(6, 4))
        plt.plot(epochs, tr, "o-", label="train (augmented, training mode)")
        plt.plot(epochs, va_, "s-", label="validation")
        plt.xlabel("epoch")
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
    curves(out)
    grid(out)
