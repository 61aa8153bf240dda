import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def lme4_ref():
    return json.loads((DATA / "lme4_reference.json").read_text())["models"]


def load(name: str) -> pd.DataFrame:
    """Read an exported lme4 data set; factors stay strings (R's labels)."""
    df = pd.read_csv(DATA / name, dtype=str)
    for c in df.columns:
        try:
            df[c] = pd.to_numeric(df[c])
        except ValueError:
            pass
    return df


def load_factors(name: str, factors: list[str]) -> pd.DataFrame:
    df = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    return df


@pytest.fixture(scope="session")
def seed_nested():
    from bayesvc.datasets import generate_nested

    np.random.seed(3123)
    return generate_nested()


@pytest.fixture(scope="session")
def seed_crossed():
    from bayesvc.datasets import generate_crossed, generate_nested

    np.random.seed(3123)
    generate_nested()  # the seed notebook draws the nested data first
    return generate_crossed()
