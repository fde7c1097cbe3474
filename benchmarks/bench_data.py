"""The digits split every system trains on (computed once, in the helper worker)."""
import numpy as np


def digits_split():
    """X / 16 as float32, stratified 80/20, seed 0: examples/digits_multiclass.py's split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
