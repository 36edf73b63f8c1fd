"""Writes breast-cancer.csv.gz from the copy of the dataset that ships inside scikit-learn.

Made with: scikit-learn==1.9.1, numpy==2.4.6 (pip install scikit-learn).
Run from the repo root: python3 models/datasets/make_breast_cancer_csv.py

Header: 30 snake_case feature names (sklearn's names with spaces -> '_'), then `label`
(`malignant` | `benign`). Numbers are written with Python's shortest round-trip repr, and the
gzip header carries no file name or timestamp, so the output is byte-for-byte reproducible.
"""
import gzip
import io
import os

from sklearn.datasets import load_breast_cancer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "breast-cancer.csv.gz")


def main() -> None:
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    buf = io.StringIO()
    buf.write(",".join(names + ["label"]) + "\n")
    for row, target in zip(data.data, data.target):
        buf.write(",".join(repr(float(v)) for v in row) + "," + str(data.target_names[target]) + "\n")
    with open(OUT, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(buf.getvalue().encode("utf-8"))
    print(f"wrote {OUT}: {len(data.data)} rows, {len(names)} features")


if __name__ == "__main__":
    main()
