//! AKD's [`Database`] on top of [`KtStore`](crate::store::KtStore): one instance per
//! application. Tree nodes and the AZKS header become `kt_records` rows under AKD's own binary
//! ids, in the fixed binary encoding below; value states become `kt_values` rows, queried by
//! label.
//!
//! Record encoding (all integers big-endian):
//! * AZKS: `latest_epoch u64 || num_nodes u64`.
//! * tree node: `node(latest) || 0x00` or `node(latest) || 0x01 || node(previous)`, where
//!   `node = last_epoch u64 || min_descendant_epoch u64 || label(parent) || node_type u8 ||
//!   opt_label(left) || opt_label(right) || hash [32]`, `label = value [32] || bit_length u32`
//!   and `opt_label = 0x00 | 0x01 || label`. The node's own label is the record id.
//!
//! Tree nodes are kept in a [`NodeCache`] shared by every request of the process, so a lookup
//! reads from the database only the nodes no earlier request read (see [`NodeCache`] for why a
//! cached node is never older than the epoch a request works on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, StorageType, ValueState, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable};
use akd::tree_node::{TreeNode, TreeNodeWithPreviousValue};
use akd::{AkdLabel, AkdValue, NodeLabel};
use async_trait::async_trait;

use crate::store::{KtValueRecord, Store};

/// Tree nodes an application's directory has read or written, valid for every epoch from the
/// newest one seen on.
///
/// The invariant: every cached node is the database's state of that node at some moment after
/// the directory was at epoch [`NodeCache`]'s `epoch`. A request works on the epoch of the
/// AZKS record it read first (read from the database every time, never from here); that read
/// raises `epoch`, flushing the cache when it moves, so the request only ever finds nodes as
/// they were at its own epoch or later. A node of a later epoch still serves an older
/// request, because AKD keeps each node's previous state and picks the one of the request's
/// epoch, exactly as when it reads the database directly.
///
/// A database read that began before a flush must not refill the cache with what it read (it
/// may be the state before the new epoch): each flush moves `generation`, and a read inserts
/// only if the generation it started under is still current.
///
/// The process that publishes an epoch knows every node it changed (AKD writes an epoch as one
/// batch ending with the AZKS record): it writes them through instead of flushing, so its own
/// cache survives its epochs. Another process (a PostgreSQL replica) sees the epoch move and
/// flushes.
pub struct NodeCache {
    state: Mutex<CacheState>,
    capacity: usize,
}

struct CacheState {
    /// The newest epoch seen; `None` before the first AZKS read.
    epoch: Option<u64>,
    generation: u64,
    nodes: HashMap<Vec<u8>, DbRecord>,
}

impl NodeCache {
    /// An empty cache holding at most `capacity` nodes (about 400 bytes each).
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(CacheState {
                epoch: None,
                generation: 0,
                nodes: HashMap::new(),
            }),
            capacity,
        }
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // The state is consistent after every statement, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of nodes cached.
    pub fn len(&self) -> usize {
        self.state().nodes.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every cached node as `(id, data)` in the database's encoding, in no particular order
    /// (for tests: each must equal the database's record of the same id).
    pub fn encoded_nodes(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.state()
            .nodes
            .iter()
            .filter_map(|(id, record)| Some((id.clone(), encode(record)?)))
            .collect()
    }

    /// The newest epoch seen in the database, if any.
    pub fn epoch(&self) -> Option<u64> {
        self.state().epoch
    }

    /// The database is at `epoch` (or later): forget everything older.
    fn observe_epoch(&self, epoch: u64) {
        self.advance(epoch, None);
    }

    /// The database moved to `epoch`; `changes`, when known, are `(from, changed)`: `changed`
    /// names every record the epochs after `from` up to `epoch` wrote. When the cache is at
    /// `from`, it keeps every other node (they are the same at `epoch`); otherwise, or without
    /// the list, it forgets everything. Either way reads begun before are fenced. Nothing
    /// changes when the cache is already at `epoch` or later.
    fn advance(&self, epoch: u64, changes: Option<(u64, &[Vec<u8>])>) {
        let mut state = self.state();
        match (state.epoch, changes) {
            (Some(seen), _) if seen >= epoch => return,
            (Some(seen), Some((from, changed))) if seen == from => {
                for id in changed {
                    state.nodes.remove(id);
                }
            }
            _ => state.nodes.clear(),
        }
        state.epoch = Some(epoch);
        state.generation += 1;
    }

    /// Something was written that is not a whole epoch: forget everything.
    fn flush(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.nodes.clear();
    }

    fn generation(&self) -> u64 {
        self.state().generation
    }

    fn get(&self, id: &[u8]) -> Option<DbRecord> {
        self.state().nodes.get(id).cloned()
    }

    /// Keeps `records`, read from the database under `generation`, unless a flush came since.
    fn insert_read(&self, generation: u64, records: &[DbRecord]) {
        let mut state = self.state();
        if state.generation == generation {
            self.insert(&mut state, records);
        }
    }

    /// Keeps as many of `records` (read under `generation`) as fit without evicting anything,
    /// unless a flush came since; whether there is room for more.
    fn fill(&self, generation: u64, records: &[DbRecord]) -> bool {
        let mut state = self.state();
        if state.generation != generation {
            return state.nodes.len() < self.capacity;
        }
        for record in records {
            if state.nodes.len() >= self.capacity {
                return false;
            }
            if matches!(record, DbRecord::TreeNode(_)) {
                state
                    .nodes
                    .insert(record.get_full_binary_id(), record.clone());
            }
        }
        state.nodes.len() < self.capacity
    }

    /// This process committed `records`, the whole of epoch `epoch` (ending with its AZKS).
    fn published(&self, epoch: u64, records: &[DbRecord]) {
        let mut state = self.state();
        match state.epoch {
            // Someone is already further: what was written may be outdated.
            Some(seen) if seen > epoch => return,
            // The cache holds the previous epoch (or this one, read after the commit): the
            // written nodes are the only ones that changed.
            Some(seen) if seen + 1 >= epoch => {}
            // Epochs in between were published elsewhere, or nothing was seen yet.
            _ => state.nodes.clear(),
        }
        state.epoch = Some(epoch);
        // Reads that began before the commit may hold the nodes' previous state.
        state.generation += 1;
        self.insert(&mut state, records);
    }

    fn insert(&self, state: &mut CacheState, records: &[DbRecord]) {
        for record in records {
            if !matches!(record, DbRecord::TreeNode(_)) {
                continue;
            }
            if state.nodes.len() >= self.capacity {
                evict_deepest(&mut state.nodes, (self.capacity / 8).max(1));
            }
            if self.capacity > 0 {
                state
                    .nodes
                    .insert(record.get_full_binary_id(), record.clone());
            }
        }
    }
}

/// The depth (label length in bits) of the tree node cached under `id`, AKD's binary id of a
/// tree node: its storage type, then the label's length (big-endian u32), then its value.
fn node_depth(id: &[u8]) -> u32 {
    id.get(1..5)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(u32::MAX, u32::from_be_bytes)
}

/// Removes `count` of the deepest nodes.
///
/// Why deepest: every lookup reads the few nodes near the root, and a lookup of a random
/// identity almost never reads the same deep node twice. When the tree outgrows the cache (a
/// directory of 1M identities has about 2M nodes), keeping the top levels leaves each lookup
/// only its last few levels to read, where dropping arbitrary nodes made it read the top
/// levels again after every eviction. Two passes over the keys, once per `count` inserts.
fn evict_deepest(nodes: &mut HashMap<Vec<u8>, DbRecord>, count: usize) {
    let mut per_depth: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
    for id in nodes.keys() {
        *per_depth.entry(node_depth(id)).or_default() += 1;
    }
    // The shallowest depth to evict from: everything deeper goes, and as many at this depth
    // as are still needed.
    let mut deeper = 0;
    let mut threshold = 0;
    for (&depth, &at_depth) in per_depth.iter().rev() {
        threshold = depth;
        if deeper + at_depth >= count {
            break;
        }
        deeper += at_depth;
    }
    let mut at_threshold = count.saturating_sub(deeper);
    nodes.retain(|id, _| {
        let depth = node_depth(id);
        if depth > threshold {
            return false;
        }
        if depth == threshold && at_threshold > 0 {
            at_threshold -= 1;
            return false;
        }
        true
    });
}

/// Most epochs a cache follows change by change; further behind, it starts over.
const MAX_EPOCHS_FOLLOWED: u64 = 64;

/// Most changed records a cache drops one by one; more, and it starts over (as many nodes as
/// an epoch of about 5,000 new identities writes in a directory of a million).
const MAX_CHANGES_FOLLOWED: u32 = 100_000;

/// One application's directory storage.
#[derive(Clone)]
pub struct KtDatabase {
    store: Arc<dyn Store>,
    app_id: Arc<str>,
    cache: Arc<NodeCache>,
}

impl KtDatabase {
    /// The storage of `app_id`'s directory, caching tree nodes in `cache` (one per application
    /// and process).
    pub fn new(store: Arc<dyn Store>, app_id: &str, cache: Arc<NodeCache>) -> Self {
        Self {
            store,
            app_id: app_id.into(),
            cache,
        }
    }

    /// The node cache.
    pub fn cache(&self) -> &Arc<NodeCache> {
        &self.cache
    }

    /// Fills the node cache from the database, the nodes nearest the root first, until it is
    /// full or holds the whole tree; returns the number of nodes cached then.
    ///
    /// AKD's node ids begin with the label's length, so the database's id order is the tree's
    /// level order. Each page is fenced like any read ([`NodeCache`]): an epoch published
    /// while it was read keeps it out, so the filled cache is as correct as one filled by
    /// lookups. Filling never evicts: when the cache is full, it stops.
    pub async fn fill_cache(&self) -> Result<usize, StorageError> {
        const PAGE: u32 = 2_000;
        // The cache's epoch first: every node read after it is at that epoch or later.
        let azks = akd::Azks::get_full_binary_key_id(&akd::append_only_zks::DEFAULT_AZKS_KEY);
        self.get_binary(azks).await?;
        let mut after = vec![StorageType::TreeNode as u8];
        loop {
            let generation = self.cache.generation();
            let page = self
                .store
                .kt_records_after(&self.app_id, &after, PAGE)
                .await
                .map_err(backend)?;
            let Some((last, _)) = page.last() else { break };
            after.clone_from(last);
            let nodes = page
                .iter()
                .take_while(|(id, _)| id.first() == Some(&(StorageType::TreeNode as u8)))
                .map(|(id, data)| decode(id, data))
                .collect::<Result<Vec<_>, _>>()?;
            let past_the_nodes = nodes.len() < page.len();
            if !self.cache.fill(generation, &nodes) || past_the_nodes {
                break;
            }
        }
        Ok(self.cache.len())
    }
}

fn backend(e: crate::store::StoreError) -> StorageError {
    StorageError::Connection(e.to_string())
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Other(format!("corrupt key-transparency record: {what}"))
}

fn put_label(out: &mut Vec<u8>, label: &NodeLabel) {
    out.extend_from_slice(&label.label_val);
    out.extend_from_slice(&label.label_len.to_be_bytes());
}

fn put_opt_label(out: &mut Vec<u8>, label: &Option<NodeLabel>) {
    match label {
        None => out.push(0),
        Some(label) => {
            out.push(1);
            put_label(out, label);
        }
    }
}

fn put_node(out: &mut Vec<u8>, node: &TreeNode) {
    out.extend_from_slice(&node.last_epoch.to_be_bytes());
    out.extend_from_slice(&node.min_descendant_epoch.to_be_bytes());
    put_label(out, &node.parent);
    out.push(node.node_type as u8);
    put_opt_label(out, &node.left_child);
    put_opt_label(out, &node.right_child);
    out.extend_from_slice(&node.hash.0);
}

/// Reads the fixed-size fields of an encoded record.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| corrupt("too short"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        self.take::<1>().map(|[b]| b)
    }

    fn label(&mut self) -> Result<NodeLabel, StorageError> {
        let value = self.take::<32>()?;
        let len = u32::from_be_bytes(self.take::<4>()?);
        Ok(NodeLabel::new(value, len))
    }

    fn opt_label(&mut self) -> Result<Option<NodeLabel>, StorageError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.label().map(Some),
            _ => Err(corrupt("optional label flag")),
        }
    }
}

/// The fields of an encoded node, in the order of `DbRecord::build_tree_node_with_previous_value`.
struct NodeFields {
    last_epoch: u64,
    min_descendant_epoch: u64,
    parent: NodeLabel,
    node_type: u8,
    left: Option<NodeLabel>,
    right: Option<NodeLabel>,
    hash: [u8; 32],
}

fn read_node(reader: &mut Reader<'_>) -> Result<NodeFields, StorageError> {
    Ok(NodeFields {
        last_epoch: reader.u64()?,
        min_descendant_epoch: reader.u64()?,
        parent: reader.label()?,
        node_type: reader.u8()?,
        left: reader.opt_label()?,
        right: reader.opt_label()?,
        hash: reader.take::<32>()?,
    })
}

/// The record's `kt_records` data (`None` for value states, which go to `kt_values`).
fn encode(record: &DbRecord) -> Option<Vec<u8>> {
    match record {
        DbRecord::Azks(azks) => {
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&azks.latest_epoch.to_be_bytes());
            out.extend_from_slice(&azks.num_nodes.to_be_bytes());
            Some(out)
        }
        DbRecord::TreeNode(node) => {
            let mut out = Vec::with_capacity(2 * 170);
            put_node(&mut out, &node.latest_node);
            match &node.previous_node {
                None => out.push(0),
                Some(previous) => {
                    out.push(1);
                    put_node(&mut out, previous);
                }
            }
            Some(out)
        }
        DbRecord::ValueState(_) => None,
    }
}

/// Decodes a `kt_records` row; its id's first byte is AKD's storage type.
fn decode(id: &[u8], data: &[u8]) -> Result<DbRecord, StorageError> {
    let mut reader = Reader(data);
    match id.first() {
        Some(&t) if t == StorageType::Azks as u8 => {
            let latest_epoch = reader.u64()?;
            let num_nodes = reader.u64()?;
            Ok(DbRecord::Azks(DbRecord::build_azks(
                latest_epoch,
                num_nodes,
            )))
        }
        Some(&t) if t == StorageType::TreeNode as u8 => {
            let key =
                TreeNodeWithPreviousValue::key_from_full_binary(id).map_err(|e| corrupt(&e))?;
            let latest = read_node(&mut reader)?;
            let previous = match reader.u8()? {
                0 => None,
                1 => Some(read_node(&mut reader)?),
                _ => return Err(corrupt("previous node flag")),
            };
            let p = previous.as_ref();
            Ok(DbRecord::TreeNode(
                DbRecord::build_tree_node_with_previous_value(
                    key.0.label_val,
                    key.0.label_len,
                    latest.last_epoch,
                    latest.min_descendant_epoch,
                    latest.parent.label_val,
                    latest.parent.label_len,
                    latest.node_type,
                    latest.left,
                    latest.right,
                    latest.hash,
                    p.map(|n| n.last_epoch),
                    p.map(|n| n.min_descendant_epoch),
                    p.map(|n| n.parent.label_val),
                    p.map(|n| n.parent.label_len),
                    p.map(|n| n.node_type),
                    p.and_then(|n| n.left),
                    p.and_then(|n| n.right),
                    p.map(|n| n.hash),
                ),
            ))
        }
        _ => Err(corrupt("unknown record type")),
    }
}

fn to_row(state: &ValueState) -> Result<KtValueRecord, StorageError> {
    let mut node_label = Vec::with_capacity(36);
    put_label(&mut node_label, &state.label);
    Ok(KtValueRecord {
        label: state.username.0.clone(),
        epoch: i64::try_from(state.epoch).map_err(|_| corrupt("epoch"))?,
        version: i64::try_from(state.version).map_err(|_| corrupt("version"))?,
        node_label,
        value: state.value.0.clone(),
    })
}

fn from_row(row: KtValueRecord) -> Result<ValueState, StorageError> {
    let label = Reader(&row.node_label).label()?;
    Ok(DbRecord::build_user_state(
        row.label,
        row.value,
        u64::try_from(row.version).map_err(|_| corrupt("version"))?,
        label.label_len,
        label.label_val,
        u64::try_from(row.epoch).map_err(|_| corrupt("epoch"))?,
    ))
}

/// AKD's choice among an identity's versions (sorted by epoch), as its in-memory database does.
fn pick(states: Vec<ValueState>, flag: ValueStateRetrievalFlag) -> Option<ValueState> {
    use ValueStateRetrievalFlag as F;
    match flag {
        F::MaxEpoch => states.into_iter().max_by_key(|s| s.epoch),
        F::MinEpoch => states.into_iter().min_by_key(|s| s.epoch),
        F::SpecificVersion(version) => states.into_iter().find(|s| s.version == version),
        F::SpecificEpoch(epoch) => states.into_iter().find(|s| s.epoch == epoch),
        F::LeqEpoch(epoch) => states
            .into_iter()
            .filter(|s| s.epoch <= epoch)
            .max_by_key(|s| s.epoch),
    }
}

impl KtDatabase {
    async fn states(&self, label: &AkdLabel) -> Result<Vec<ValueState>, StorageError> {
        self.store
            .kt_values(&self.app_id, &label.0)
            .await
            .map_err(backend)?
            .into_iter()
            .map(from_row)
            .collect()
    }

    async fn get_binary(&self, id: Vec<u8>) -> Result<DbRecord, StorageError> {
        if id.first() == Some(&(StorageType::ValueState as u8)) {
            let key = ValueState::key_from_full_binary(&id).map_err(|e| corrupt(&e))?;
            return pick(
                self.states(&AkdLabel(key.0)).await?,
                ValueStateRetrievalFlag::SpecificEpoch(key.1),
            )
            .map(DbRecord::ValueState)
            .ok_or_else(|| StorageError::NotFound("value state".into()));
        }
        let is_node = id.first() == Some(&(StorageType::TreeNode as u8));
        if is_node {
            if let Some(record) = self.cache.get(&id) {
                return Ok(record);
            }
        }
        let generation = self.cache.generation();
        let rows = self
            .store
            .kt_records(&self.app_id, std::slice::from_ref(&id))
            .await
            .map_err(backend)?;
        let record = match rows.first() {
            Some((id, data)) => decode(id, data)?,
            None => return Err(StorageError::NotFound("record".into())),
        };
        self.remember(generation, std::slice::from_ref(&record))
            .await;
        Ok(record)
    }

    /// Feeds what was read from the database (under `generation`) to the cache: an AZKS
    /// record moves the cache's epoch, tree nodes are kept.
    async fn remember(&self, generation: u64, records: &[DbRecord]) {
        for record in records {
            if let DbRecord::Azks(azks) = record {
                self.follow_epoch(azks.latest_epoch).await;
            }
        }
        self.cache.insert_read(generation, records);
    }

    /// The database is at `epoch`: brings the cache there. From a known older epoch, only
    /// the nodes the epochs in between wrote are dropped (the database names them); when it
    /// cannot name them all, everything is.
    ///
    /// "All" is checked through the root: every epoch rewrites it (its hash changes with any
    /// change below), so a list of changes without the root was written by a process that
    /// does not record its epochs (an older Sealkit during a rolling upgrade), and the list is
    /// not trusted.
    async fn follow_epoch(&self, epoch: u64) {
        let Some(seen) = self.cache.epoch().filter(|seen| epoch > *seen) else {
            // The first epoch seen (nothing cached yet), or no move.
            self.cache.observe_epoch(epoch);
            return;
        };
        let changed = match (i64::try_from(seen), i64::try_from(epoch)) {
            (Ok(after), Ok(upto)) if epoch - seen <= MAX_EPOCHS_FOLLOWED => self
                .store
                .kt_changed_ids(&self.app_id, after, upto, MAX_CHANGES_FOLLOWED)
                .await
                .ok(),
            _ => None,
        };
        let root = TreeNodeWithPreviousValue::get_full_binary_key_id(&akd::tree_node::NodeKey(
            NodeLabel::root(),
        ));
        let complete =
            changed.filter(|ids| ids.len() < MAX_CHANGES_FOLLOWED as usize && ids.contains(&root));
        self.cache
            .advance(epoch, complete.as_deref().map(|changed| (seen, changed)));
    }
}

#[async_trait]
impl Database for KtDatabase {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(
        &self,
        records: Vec<DbRecord>,
        _state: DbSetState,
    ) -> Result<(), StorageError> {
        let mut rows = Vec::with_capacity(records.len());
        let mut values = Vec::new();
        for record in &records {
            match (record, encode(record)) {
                (DbRecord::ValueState(state), _) => values.push(to_row(state)?),
                (_, Some(data)) => rows.push((record.get_full_binary_id(), data)),
                (_, None) => return Err(corrupt("unencodable record")),
            }
        }
        // AKD commits an epoch as one batch whose last record is the new AZKS; each record
        // remembers that epoch, so other processes drop just these nodes from their caches.
        let epoch = match records.last() {
            Some(DbRecord::Azks(azks)) => i64::try_from(azks.latest_epoch).ok(),
            _ => None,
        };
        let written = self
            .store
            .kt_write(&self.app_id, epoch, &rows, &values)
            .await;
        match (written, records.last()) {
            (Ok(()), Some(DbRecord::Azks(azks))) => {
                self.cache.published(azks.latest_epoch, &records);
                Ok(())
            }
            (written, _) => {
                // A partial write or a failed one: what is cached may no longer be the
                // database's state.
                self.cache.flush();
                written.map_err(backend)
            }
        }
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        self.get_binary(St::get_full_binary_key_id(id)).await
    }

    async fn batch_get<St: Storable>(
        &self,
        ids: &[St::StorageKey],
    ) -> Result<Vec<DbRecord>, StorageError> {
        if St::data_type() == StorageType::ValueState {
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                match self.get_binary(St::get_full_binary_key_id(id)).await {
                    Ok(record) => found.push(record),
                    Err(StorageError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(found);
        }
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids.iter().map(St::get_full_binary_key_id) {
            match self.cache.get(&id) {
                Some(record) => found.push(record),
                None => missing.push(id),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let generation = self.cache.generation();
        let read = self
            .store
            .kt_records(&self.app_id, &missing)
            .await
            .map_err(backend)?
            .iter()
            .map(|(id, data)| decode(id, data))
            .collect::<Result<Vec<_>, _>>()?;
        self.remember(generation, &read).await;
        found.extend(read);
        Ok(found)
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let states = self.states(username).await?;
        if states.is_empty() {
            return Err(StorageError::NotFound("no entry for this label".into()));
        }
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        pick(self.states(username).await?, flag)
            .ok_or_else(|| StorageError::NotFound("no such version for this label".into()))
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        let mut found = HashMap::with_capacity(usernames.len());
        for username in usernames {
            if let Some(state) = pick(self.states(username).await?, flag) {
                found.insert(username.clone(), (state.version, state.value));
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akd::storage::types::DbRecord;

    #[test]
    fn tree_nodes_round_trip() -> Result<(), StorageError> {
        let label = NodeLabel::new([7; 32], 12);
        let node = DbRecord::build_tree_node_with_previous_value(
            [7; 32],
            12,
            5,
            2,
            [1; 32],
            3,
            3,
            Some(NodeLabel::new([2; 32], 13)),
            None,
            [9; 32],
            Some(4),
            Some(1),
            Some([1; 32]),
            Some(3),
            Some(3),
            None,
            Some(NodeLabel::new([3; 32], 13)),
            Some([8; 32]),
        );
        assert_eq!(node.label, label);
        let record = DbRecord::TreeNode(node);
        let data = encode(&record).ok_or_else(|| corrupt("none"))?;
        assert_eq!(decode(&record.get_full_binary_id(), &data)?, record);
        let azks = DbRecord::Azks(DbRecord::build_azks(17, 99));
        let data = encode(&azks).ok_or_else(|| corrupt("none"))?;
        assert_eq!(decode(&azks.get_full_binary_id(), &data)?, azks);
        assert!(decode(&azks.get_full_binary_id(), &data[..8]).is_err());
        Ok(())
    }

    fn node(label: u8, last_epoch: u64) -> DbRecord {
        DbRecord::TreeNode(DbRecord::build_tree_node_with_previous_value(
            [label; 32],
            8,
            last_epoch,
            1,
            [0; 32],
            0,
            3,
            None,
            None,
            [label; 32],
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ))
    }

    #[test]
    fn a_newer_epoch_flushes_and_fences_reads_begun_before() {
        let cache = NodeCache::new(100);
        cache.observe_epoch(3);
        let old = node(1, 3);
        let id = old.get_full_binary_id();
        // A read that began at epoch 3 finishes after another request saw epoch 4.
        let before = cache.generation();
        cache.observe_epoch(4);
        cache.insert_read(before, std::slice::from_ref(&old));
        assert!(
            cache.get(&id).is_none(),
            "a read from before epoch 4 was cached"
        );
        // An older epoch seen late changes nothing.
        let now = cache.generation();
        cache.insert_read(now, std::slice::from_ref(&old));
        cache.observe_epoch(3);
        assert_eq!(cache.get(&id), Some(old));
        assert_eq!(cache.epoch(), Some(4));
        cache.observe_epoch(5);
        assert!(cache.is_empty());
    }

    #[test]
    fn an_own_epoch_is_written_through_and_a_gap_flushes() {
        let cache = NodeCache::new(100);
        cache.observe_epoch(4);
        let kept = node(1, 2);
        let changed = node(2, 4);
        let generation = cache.generation();
        cache.insert_read(generation, &[kept.clone(), changed.clone()]);
        let rewritten = node(2, 5);
        cache.published(
            5,
            &[
                rewritten.clone(),
                DbRecord::Azks(DbRecord::build_azks(5, 9)),
            ],
        );
        assert_eq!(cache.epoch(), Some(5));
        assert_eq!(cache.get(&kept.get_full_binary_id()), Some(kept.clone()));
        assert_eq!(cache.get(&changed.get_full_binary_id()), Some(rewritten));
        // Reads begun before the commit may hold the previous state: fenced.
        cache.insert_read(generation, std::slice::from_ref(&changed));
        assert_eq!(cache.get(&changed.get_full_binary_id()), Some(node(2, 5)));
        // Epoch 6 was published elsewhere: this process's epoch 7 cannot vouch for the rest.
        cache.published(7, &[node(3, 7)]);
        assert!(cache.get(&kept.get_full_binary_id()).is_none());
        assert_eq!(cache.len(), 1);
        // Already further: an older write-through is ignored.
        cache.published(6, &[node(4, 6)]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = NodeCache::new(16);
        cache.observe_epoch(1);
        let generation = cache.generation();
        let nodes: Vec<DbRecord> = (0..40).map(|i| node(i, 1)).collect();
        cache.insert_read(generation, &nodes);
        assert!(
            cache.len() <= 16 && cache.len() > 8,
            "{} nodes",
            cache.len()
        );
    }

    fn node_at_depth(value: u8, depth: u32) -> DbRecord {
        let DbRecord::TreeNode(mut node) = node(value, 1) else {
            unreachable!("node() builds tree nodes");
        };
        node.label = NodeLabel::new([value; 32], depth);
        DbRecord::TreeNode(node)
    }

    #[test]
    fn a_full_cache_drops_its_deepest_nodes_first() {
        let cache = NodeCache::new(64);
        cache.observe_epoch(1);
        let generation = cache.generation();
        // 8 nodes near the root, then deep ones until the cache overflows twice.
        let top: Vec<DbRecord> = (0..8).map(|i| node_at_depth(i, 1 + u32::from(i))).collect();
        cache.insert_read(generation, &top);
        let deep: Vec<DbRecord> = (0..120u8)
            .map(|i| node_at_depth(i, 200 + u32::from(i % 40)))
            .collect();
        cache.insert_read(generation, &deep);
        assert!(cache.len() <= 64, "{} nodes", cache.len());
        for node in &top {
            assert!(
                cache.get(&node.get_full_binary_id()).is_some(),
                "a node at depth {} was evicted",
                node_depth(&node.get_full_binary_id())
            );
        }
        // The newest insert is always kept.
        let newest = deep.last().map(DbRecord::get_full_binary_id);
        assert!(newest.is_some_and(|id| cache.get(&id).is_some()));
    }

    #[test]
    fn eviction_takes_the_deepest_and_only_as_many_as_asked() {
        let mut nodes: HashMap<Vec<u8>, DbRecord> = (0..30u8)
            .map(|i| node_at_depth(i, u32::from(i % 3) + 1))
            .map(|node| (node.get_full_binary_id(), node))
            .collect();
        // 10 nodes at each of depths 1, 2, 3: taking 14 takes all of depth 3 and 4 of depth 2.
        evict_deepest(&mut nodes, 14);
        let depths: Vec<u32> = nodes.keys().map(|id| node_depth(id)).collect();
        assert_eq!(depths.len(), 16);
        assert_eq!(depths.iter().filter(|d| **d == 1).count(), 10);
        assert_eq!(depths.iter().filter(|d| **d == 2).count(), 6);
        assert_eq!(node_depth(&[]), u32::MAX);
    }

    #[test]
    fn filling_never_evicts_and_is_fenced() {
        let cache = NodeCache::new(4);
        cache.observe_epoch(1);
        let generation = cache.generation();
        let nodes: Vec<DbRecord> = (0..3).map(|i| node_at_depth(i, u32::from(i))).collect();
        assert!(cache.fill(generation, &nodes), "room for one more");
        let more: Vec<DbRecord> = (3..6).map(|i| node_at_depth(i, u32::from(i))).collect();
        assert!(!cache.fill(generation, &more), "full");
        assert_eq!(cache.len(), 4);
        for kept in nodes.iter().chain(&more[..1]) {
            assert!(cache.get(&kept.get_full_binary_id()).is_some());
        }
        // A page read before an epoch moved is not kept.
        cache.observe_epoch(2);
        assert!(cache.fill(generation, &nodes));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_followed_epoch_drops_only_what_it_changed() {
        let cache = NodeCache::new(100);
        cache.observe_epoch(3);
        let generation = cache.generation();
        let kept = node(1, 2);
        let changed = node(2, 3);
        cache.insert_read(generation, &[kept.clone(), changed.clone()]);
        cache.advance(5, Some((3, &[changed.get_full_binary_id()])));
        assert_eq!(cache.epoch(), Some(5));
        assert_eq!(cache.get(&kept.get_full_binary_id()), Some(kept.clone()));
        assert!(cache.get(&changed.get_full_binary_id()).is_none());
        // A read begun before the move may hold the old state of what changed: fenced.
        cache.insert_read(generation, std::slice::from_ref(&changed));
        assert!(cache.get(&changed.get_full_binary_id()).is_none());
        // Moving to an older or the same epoch changes nothing.
        cache.advance(4, None);
        cache.advance(5, None);
        assert_eq!((cache.epoch(), cache.len()), (Some(5), 1));
        // A list of changes from another epoch than the cache's, or none: everything goes.
        cache.advance(6, Some((4, &[])));
        assert_eq!((cache.epoch(), cache.len()), (Some(6), 0));
        let generation = cache.generation();
        cache.insert_read(generation, std::slice::from_ref(&kept));
        cache.advance(7, None);
        assert_eq!((cache.epoch(), cache.len()), (Some(7), 0));
    }

    #[test]
    fn value_states_round_trip() -> Result<(), StorageError> {
        let state = DbRecord::build_user_state(b"alice".to_vec(), vec![1, 2], 3, 256, [4; 32], 9);
        assert_eq!(from_row(to_row(&state)?)?, state);
        Ok(())
    }
}
