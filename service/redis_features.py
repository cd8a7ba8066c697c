"""Online feature reads straight from Feast's Redis layout: one HMGET per customer.

`FeatureStore.get_online_features(...).to_dict()` costs 0.69 ms at p50 in Python (request
and response protobufs, one lookup per feature view, a response dict; `python -m
tests.benchmarks --sections floor`), against 0.24 ms for this read. Feast keeps every
feature of an entity in one Redis hash: the key is the serialised entity key followed by
the project, a field is the murmur3 hash of `<view>:<feature>`, and each value a
serialised `ValueProto`. With one join key shared by all the views read, a single HMGET of
that hash returns them all; values are decoded with Feast's own converter. The layout
comes from Feast's helpers (`_redis_key`, `_mmh3`, `compute_versioned_name`, as in
`service.online_erasure`), and `tests/integration/test_online_erasure.py` compares every
value with what `get_online_features` returns: re-check both when Feast is upgraded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feast import FeatureStore, FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_versioned_name
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from service.online_erasure import entity_key


def redis_hash_reader(
    store: FeatureStore, features: Sequence[tuple[str, str]]
) -> RedisHashReader | None:
    """A direct reader of `features` ((view name, feature name) pairs), or None where it
    does not apply (another online store, or views keyed by different join keys)."""
    online_store = store._get_provider().online_store  # private: no public accessor
    if not isinstance(online_store, RedisOnlineStore):
        return None
    views = {name: store.get_feature_view(name) for name in dict.fromkeys(v for v, _ in features)}
    join_keys = {tuple(c.name for c in view.entity_columns) for view in views.values()}
    if len(join_keys) != 1 or len(next(iter(join_keys))) != 1:
        return None
    return RedisHashReader(store, online_store, views, features)


class RedisHashReader:
    """Reads a fixed list of features of one entity with one HMGET (see the module)."""

    def __init__(
        self,
        store: FeatureStore,
        online_store: RedisOnlineStore,
        views: dict[str, FeatureView],
        features: Sequence[tuple[str, str]],
    ) -> None:
        config = store.config
        versioning = config.registry.enable_online_feature_view_versioning
        self._fields = [
            _mmh3(f"{compute_versioned_name(views[view], versioning)}:{feature}")
            for view, feature in features
        ]
        self._key_view = next(iter(views.values()))
        self._project = config.project
        self._key_version = config.entity_key_serialization_version
        self._client = online_store._get_client(config.online_store)

    def read(self, entity: str) -> list[Any]:
        """The values in the order of `features`; None where the store holds none."""
        key = _redis_key(
            self._project,
            entity_key(self._key_view, entity),
            entity_key_serialization_version=self._key_version,
        )
        return [
            None if raw is None else _python(raw) for raw in self._client.hmget(key, self._fields)
        ]


# Value kinds Feast's converter returns unchanged: read them off the message directly
# (the converter's checks for the other kinds cost more than the decoding itself).
PLAIN_KINDS = frozenset(
    {"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val", "bytes_val"}
)


def _python(raw: bytes) -> Any:
    """A serialised ValueProto as Feast's `feast_value_type_to_python_type` returns it."""
    proto = ValueProto.FromString(raw)
    kind = proto.WhichOneof("val")
    if kind in PLAIN_KINDS:
        return getattr(proto, kind)
    return feast_value_type_to_python_type(proto)
