"""Delete one entity's rows from the Feast online store (customer erasure).

Feast 0.67 has no public call for this: an `OnlineStore` writes and reads entity rows, but
deletes only whole feature views (`update`, `teardown`, `RedisOnlineStore.delete_table`) or
every entity of a join key (`RedisOnlineStore.delete_entity_values`). The functions below
delete a single entity key of the two online stores this project ships, SQLite and Redis,
keyed exactly as those stores key it, with Feast's own helpers: `serialize_entity_key`,
`compute_table_id` (SQLite: one table per view, one row per entity and feature) and
`_redis_key`, `_mmh3`, `compute_versioned_name` (Redis: one hash per entity, one field per
view and feature plus a `_ts:<view>` field). Re-check them when Feast is upgraded.
"""

from __future__ import annotations

from collections.abc import Sequence

from feast import FeatureStore, FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import (
    _mmh3,
    _redis_key,
    compute_table_id,
    compute_versioned_name,
)
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.type_map import python_values_to_proto_values

from service.errors import FeatureStoreError


def entity_key(view: FeatureView, value: str) -> EntityKeyProto:
    """The entity key of `value` in a view with one join key, as Feast builds it on writes."""
    if len(view.entity_columns) != 1:
        raise FeatureStoreError(f"feature view {view.name} does not have exactly one join key")
    (column,) = view.entity_columns
    (proto,) = python_values_to_proto_values([value], column.dtype.to_value_type())
    return EntityKeyProto(join_keys=[column.name], entity_values=[proto])


def erase_entity(store: FeatureStore, views: Sequence[FeatureView], value: str) -> list[str]:
    """Delete the rows of `value` from `views` in the online store, in one transaction.

    Returns the names of the views that held a row for it (empty when none did).
    """
    online_store = store._get_provider().online_store  # private: no public accessor
    if isinstance(online_store, SqliteOnlineStore):
        return _erase_sqlite(online_store, store.config, views, value)
    if isinstance(online_store, RedisOnlineStore):
        return _erase_redis(online_store, store.config, views, value)
    raise FeatureStoreError(
        f"erasure is not implemented for the {type(online_store).__name__} online store"
    )


def _serialized_key(config: RepoConfig, view: FeatureView, value: str) -> bytes:
    return serialize_entity_key(
        entity_key(view, value),
        entity_key_serialization_version=config.entity_key_serialization_version,
    )


def _erase_sqlite(
    online_store: SqliteOnlineStore,
    config: RepoConfig,
    views: Sequence[FeatureView],
    value: str,
) -> list[str]:
    """SQLite: delete the entity's rows (one per feature) from each view's table.

    `secure_delete` (left on for the store's connection) overwrites the deleted values in
    the file instead of only marking their space free.
    """
    connection = online_store._get_conn(config)  # the store's own connection
    connection.execute("PRAGMA secure_delete=ON")
    versioning = config.registry.enable_online_feature_view_versioning
    cleared = []
    with connection:  # one transaction: commits on success, rolls back on error
        for view in views:
            table = compute_table_id(config.project, view, versioning).replace('"', '""')
            cursor = connection.execute(
                f'DELETE FROM "{table}" WHERE entity_key = ?',
                (_serialized_key(config, view, value),),
            )
            if cursor.rowcount > 0:
                cleared.append(view.name)
    return cleared


def _erase_redis(
    online_store: RedisOnlineStore,
    config: RepoConfig,
    views: Sequence[FeatureView],
    value: str,
) -> list[str]:
    """Redis: remove each view's fields from the entity's hash (Redis drops an empty hash).

    On a Redis Cluster (`redis_type: redis_cluster`) too: every view's fields are in the
    entity's one hash, so the transaction touches one key, one slot, one shard.
    """
    client = online_store._get_client(config.online_store)
    versioning = config.registry.enable_online_feature_view_versioning
    with client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: all views or none
        for view in views:
            name = compute_versioned_name(view, versioning)
            fields = [_mmh3(f"{name}:{f.name}") for f in view.features]
            key = _redis_key(
                config.project,
                entity_key(view, value),
                entity_key_serialization_version=config.entity_key_serialization_version,
            )
            pipe.hdel(key, *fields, f"_ts:{name}".encode())
        removed = pipe.execute()
    return [view.name for view, count in zip(views, removed, strict=True) if count > 0]
