"""Online feature reads straight from Feast's Redis layout: one HMGET per customer.

`FeatureStore.get_online_features(...).to_dict()` costs 0.57 ms at p50 in Python (request
and response protobufs, one lookup per feature view, a response dict), against 0.09 ms for
this read (`python -m tests.benchmarks --sections floor`, 2026-12-05 20:47 UTC; 0.21 ms
before the key came from a checked prefix and the command went out packed on the thread's
own connection instead of through `Redis.hmget`). Feast keeps every
feature of an entity in one Redis hash: the key is the serialised entity key followed by
the project, a field is the murmur3 hash of `<view>:<feature>`, and each value a
serialised `ValueProto`. With one join key shared by all the views read, a single HMGET of
that hash returns them all; values are decoded with Feast's own converter. The layout
comes from Feast's helpers (`_redis_key`, `_mmh3`, `compute_versioned_name`, as in
`service.online_erasure`), and `tests/integration/test_online_erasure.py` compares every
value with what `get_online_features` returns: re-check both when Feast is upgraded.
"""

from __future__ import annotations

import struct
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from feast import FeatureStore, FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_versioned_name
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType
from redis import Redis
from redis.connection import ConnectionPool

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
        self._project_bytes = config.project.encode()
        self._key_version = config.entity_key_serialization_version
        (join_key,) = self._key_view.entity_columns
        self._key_prefix = (
            _string_key_prefix(self._feast_key, self._project)
            if join_key.dtype.to_value_type() == ValueType.STRING
            else None  # another key type: every key from Feast's function
        )
        self._client = online_store._get_client(config.online_store)
        # A plain Redis client (not a Redis Cluster, which routes each key) gets the packed
        # command on a connection of the reading thread's own, see `_hmget`.
        self._pool: ConnectionPool | None = (
            self._client.connection_pool if type(self._client) is Redis else None
        )
        self._packed_fields = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in self._fields)
        self._packed_head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(self._fields) + 2)
        self._local = threading.local()

    def read(self, entity: str) -> list[Any]:
        """The values in the order of `features`; None where the store holds none."""
        key = self._key(entity)
        raws = self._client.hmget(key, self._fields) if self._pool is None else self._hmget(key)
        return [None if raw is None else _python(raw) for raw in raws]

    def _feast_key(self, entity: str) -> bytes:
        """The hash's key as Feast builds it (entity key serialised, then the project)."""
        return _redis_key(
            self._project,
            entity_key(self._key_view, entity),
            entity_key_serialization_version=self._key_version,
        )

    def _key(self, entity: str) -> bytes:
        """Feast's key: from the checked prefix where there is one (no protobuf entity key
        built per read), else from Feast's function."""
        if self._key_prefix is None:
            return self._feast_key(entity)
        return self._key_prefix + _after_prefix(entity, self._project_bytes)

    def _hmget(self, key: bytes) -> list[bytes | None]:
        """The HMGET as `Redis.hmget` sends it, on a connection this thread keeps, with the
        client's retry policy (`bound_redis_client`: one immediate retry after reconnecting,
        so a connection the server closed is reopened), without packing the fields again or
        redis-py's per-command wrapping and pool checkout (docs/performance-history.md,
        2026-12-05 late evening)."""
        assert self._pool is not None
        command = [b"%s$%d\r\n%s\r\n%s" % (self._packed_head, len(key), key, self._packed_fields)]
        held: _ThreadConnection | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = _ThreadConnection(self._pool)
        connection = held.connection

        def send_and_read() -> list[bytes | None]:
            connection.send_packed_command(command)  # type: ignore[no-untyped-call]
            response: list[bytes | None] = connection.read_response()  # type: ignore[no-untyped-call]
            return response

        result: list[bytes | None] = connection.retry.call_with_retry(
            send_and_read,
            lambda _: connection.disconnect(),  # type: ignore[no-untyped-call]
        )
        return result


class _ThreadConnection:
    """A pooled connection one thread keeps for its reads; it goes back to the pool when the
    thread ends (the thread's locals are dropped then), so threads that come and go, such as
    anyio's workers behind the decision explorer, leave no connection behind."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.connection = pool.get_connection()
        weakref.finalize(self, pool.release, self.connection)


_LENGTH = struct.Struct("<I")
_KEY_PROBES = ("C0000001", "kündin-ß-42")  # two lengths, one of them beyond ASCII


def _after_prefix(entity: str, project: bytes) -> bytes:
    """What follows the prefix in Feast's key of a string entity: the ID's length, the ID,
    then the project."""
    value = entity.encode()
    return _LENGTH.pack(len(value)) + value + project


def _string_key_prefix(feast_key: Callable[[str], bytes], project: str) -> bytes | None:
    """The bytes before the ID in Feast's key of a string entity (serialisation version 3:
    join key, value type, then `_after_prefix`), found from Feast's own `_redis_key` and
    checked on two IDs; None when the layout is another (then every key comes from Feast's
    function)."""
    project_bytes = project.encode()
    first, *others = _KEY_PROBES
    key, tail = feast_key(first), _after_prefix(first, project_bytes)
    if not key.endswith(tail):
        return None
    prefix = key[: -len(tail)]
    if any(feast_key(p) != prefix + _after_prefix(p, project_bytes) for p in others):
        return None
    return prefix


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
