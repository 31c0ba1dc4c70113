//! Key transparency: every statement is the same on both backends (upserts with
//! `ON CONFLICT ... DO UPDATE`, chunked `IN` lists).

use sqlx::{Executor, QueryBuilder};

use super::{backend, Db};
use crate::store::{KtPending, KtValueRecord, StoreResult};

/// Ids bound per statement (SQLite limits the number of bound parameters).
const CHUNK: usize = 300;

/// The records of `app_id` with these ids.
pub(crate) async fn records<'c>(
    db: impl Executor<'c, Database = Db> + Copy,
    app_id: &str,
    ids: &[Vec<u8>],
) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new("SELECT id, data FROM kt_records WHERE app_id = ");
        query.push_bind(app_id);
        query.push(" AND id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.as_slice());
        }
        query.push(")");
        let rows: Vec<(Vec<u8>, Vec<u8>)> = query
            .build_query_as()
            .fetch_all(db)
            .await
            .map_err(backend)?;
        found.extend(rows);
    }
    Ok(found)
}

/// Up to `limit` records of `app_id` with ids after `after`, in id order (the primary key's).
pub(crate) async fn records_after<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    after: &[u8],
    limit: u32,
) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
    sqlx::query_as(
        "SELECT id, data FROM kt_records WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(app_id)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(backend)
}

/// Ids of records last written by epochs `after + 1 ..= upto`.
pub(crate) async fn changed_ids<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    after: i64,
    upto: i64,
    limit: u32,
) -> StoreResult<Vec<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT id FROM kt_records WHERE app_id = $1 AND written_epoch > $2 \
         AND written_epoch <= $3 LIMIT $4",
    )
    .bind(app_id)
    .bind(after)
    .bind(upto)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(backend)
}

/// Every version of one label, oldest first.
pub(crate) async fn values<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    label: &[u8],
) -> StoreResult<Vec<KtValueRecord>> {
    sqlx::query_as(
        "SELECT label, epoch, version, node_label, value FROM kt_values \
         WHERE app_id = $1 AND label = $2 ORDER BY epoch",
    )
    .bind(app_id)
    .bind(label)
    .fetch_all(db)
    .await
    .map_err(backend)
}

/// Writes an epoch's records and values in `tx` and commits.
pub(crate) async fn write(
    mut tx: sqlx::Transaction<'static, Db>,
    app_id: &str,
    epoch: Option<i64>,
    records: &[(Vec<u8>, Vec<u8>)],
    values: &[KtValueRecord],
) -> StoreResult<()> {
    for chunk in records.chunks(CHUNK) {
        let mut query =
            QueryBuilder::<Db>::new("INSERT INTO kt_records (app_id, id, data, written_epoch) ");
        query.push_values(chunk, |mut row, (id, data)| {
            row.push_bind(app_id)
                .push_bind(id.as_slice())
                .push_bind(data.as_slice())
                .push_bind(epoch);
        });
        query.push(
            " ON CONFLICT (app_id, id) DO UPDATE SET data = excluded.data, \
             written_epoch = excluded.written_epoch",
        );
        query.build().execute(&mut *tx).await.map_err(backend)?;
    }
    for chunk in values.chunks(CHUNK / 2) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO kt_values (app_id, label, epoch, version, node_label, value) ",
        );
        query.push_values(chunk, |mut row, value| {
            row.push_bind(app_id)
                .push_bind(value.label.as_slice())
                .push_bind(value.epoch)
                .push_bind(value.version)
                .push_bind(value.node_label.as_slice())
                .push_bind(value.value.as_slice());
        });
        query.push(
            " ON CONFLICT (app_id, label, epoch) DO UPDATE SET version = excluded.version, \
             node_label = excluded.node_label, value = excluded.value",
        );
        query.build().execute(&mut *tx).await.map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// Stores an epoch's root hash; the first write wins.
pub(crate) async fn put_root<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    epoch: i64,
    root_hash: &[u8],
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO kt_roots (app_id, epoch, root_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (app_id, epoch) DO NOTHING",
    )
    .bind(app_id)
    .bind(epoch)
    .bind(root_hash)
    .execute(db)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Root hashes of epochs `from..=to`.
pub(crate) async fn roots<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    from: i64,
    to: i64,
) -> StoreResult<Vec<(i64, Vec<u8>)>> {
    sqlx::query_as(
        "SELECT epoch, root_hash FROM kt_roots WHERE app_id = $1 AND epoch >= $2 AND epoch <= $3 \
         ORDER BY epoch",
    )
    .bind(app_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
    .map_err(backend)
}

/// Queues `identity` of `app_id` for the next epoch (inside the card change's transaction).
pub(crate) async fn mark_pending<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    identity: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO kt_pending (app_id, identity) VALUES ($1, $2) \
         ON CONFLICT (app_id, identity) DO UPDATE SET seq = kt_pending.seq + 1",
    )
    .bind(app_id)
    .bind(identity)
    .execute(db)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Up to `limit` queued identities.
pub(crate) async fn pending<'c>(
    db: impl Executor<'c, Database = Db>,
    limit: u32,
) -> StoreResult<Vec<KtPending>> {
    sqlx::query_as(
        "SELECT app_id, identity, seq FROM kt_pending ORDER BY app_id, identity LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(backend)
}

/// Removes the queued identities whose `seq` did not change, in `tx`, and commits.
pub(crate) async fn clear_pending(
    mut tx: sqlx::Transaction<'static, Db>,
    done: &[KtPending],
) -> StoreResult<()> {
    for item in done {
        sqlx::query("DELETE FROM kt_pending WHERE app_id = $1 AND identity = $2 AND seq = $3")
            .bind(&item.app_id)
            .bind(&item.identity)
            .bind(item.seq)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// The ids of an identity's current cards.
pub(crate) async fn current_card_ids<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    identity: &str,
) -> StoreResult<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM cards WHERE app_id = $1 AND identity = $2 \
         AND superseded_by IS NULL AND NOT revoked ORDER BY id",
    )
    .bind(app_id)
    .bind(identity)
    .fetch_all(db)
    .await
    .map_err(backend)
}
