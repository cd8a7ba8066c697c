import pytest

from service.catalog import Catalog
from service.model import LoadedModel
from tests.unit.engine_kit import train_model


@pytest.fixture(scope="session")
def model(catalog: Catalog) -> LoadedModel:
    return train_model(catalog)
