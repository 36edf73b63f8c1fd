"""Trains a small scikit-learn pipeline on breast-cancer and exports it to ONNX with skl2onnx.

Made with (pip, from PyPI): scikit-learn==1.9.1 skl2onnx==1.20.0 onnx==1.23.2 numpy==2.4.6
Run from the repo root:     python3 models/sklearn/make_breast_cancer_model.py

Writes, next to this script:
  breast-cancer-sklearn.onnx           skl2onnx's default export: input `float_input` float32 [N, 30],
                                       outputs `output_label` (string [N]) and `output_probability`
                                       (a ZipMap: sequence<map<string, float>>)
  breast-cancer-sklearn-tensor.onnx    the same model exported with zipmap=False: `output_probability`
                                       is a float32 tensor [N, 2] in the order of `classes` below
  breast-cancer-sklearn-double.onnx    the same model with a float64 input [N, 30] (DoubleTensorType,
                                       zipmap=False): skl2onnx then writes no ai.onnx.ml operators; the
                                       `label` output picks from a constant `classes` tensor with
                                       ArrayFeatureExtractor, which is where the class labels are read
  breast-cancer-sklearn.json           sidecar: feature names, classes, input name, split, accuracy

Training uses the fixed split the TypeScript tests use: row i is a training row when i % 10 < 7.
"""
import gzip
import json
import os

import numpy as np
import onnx
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "..", "datasets", "breast-cancer.csv.gz")
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}


def load():
    with gzip.open(CSV, "rt", encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    features = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float64)
    labels = np.array([r[-1] for r in rows])
    return header[:-1], features, labels


def export(model, zipmap: bool, path: str, feature_count: int, tensor_type=FloatTensorType) -> None:
    onx = to_onnx(
        model,
        initial_types=[("float_input", tensor_type([None, feature_count]))],
        target_opset=TARGET_OPSET,
        options={id(model): {"zipmap": zipmap}},
    )
    # No producer-dependent noise: keep the file identical across re-runs.
    onx.doc_string = ""
    onnx.checker.check_model(onx, full_check=True)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main() -> None:
    feature_names, x, y = load()
    train = np.arange(len(y)) % 10 < 7
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x[train], y[train])
    classes = [str(c) for c in model.classes_]

    export(model, True, os.path.join(HERE, "breast-cancer-sklearn.onnx"), len(feature_names))
    export(model, False, os.path.join(HERE, "breast-cancer-sklearn-tensor.onnx"), len(feature_names))
    export(model, False, os.path.join(HERE, "breast-cancer-sklearn-double.onnx"), len(feature_names), DoubleTensorType)

    sidecar = {
        "featureNames": feature_names,
        "classes": classes,
        "inputName": "float_input",
        "inputType": "float32",
        "outputs": {"label": "output_label", "probabilities": "output_probability"},
        "trainedOn": "models/datasets/breast-cancer.csv.gz rows with index % 10 < 7",
        "accuracy": {
            "train": round(float(model.score(x[train], y[train])), 4),
            "test": round(float(model.score(x[~train], y[~train])), 4),
            "all": round(float(model.score(x, y)), 4),
        },
        "versions": {
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
        },
    }
    with open(os.path.join(HERE, "breast-cancer-sklearn.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f, indent=2)
        f.write("\n")
    print(json.dumps(sidecar["accuracy"]))


if __name__ == "__main__":
    main()
