//! Keys of skipped (not yet received) messages, kept the way libvsc_ratchet keeps them
//! (`vscr_ratchet_skipped_messages*.c`): per receiving chain (named by the id of the peer's
//! ratchet public key), newest chain first, at most [`MAX_SKIPPED_CHAINS`] chains; per chain,
//! newest key first, at most [`MAX_SKIPPED_MESSAGES`] keys. Past either limit the oldest entry is
//! dropped, and its message can no longer be decrypted.

use std::collections::VecDeque;

use crate::kdf::MessageKey;
use crate::keys::KeyId;

/// Most skipped-message keys kept per receiving chain (`MAX_SKIPPED_MESSAGES`).
pub const MAX_SKIPPED_MESSAGES: usize = 200;
/// Most receiving chains whose skipped-message keys are kept (`MAX_SKIPPED_DH`).
pub const MAX_SKIPPED_CHAINS: usize = 5;

#[derive(Clone)]
pub(crate) struct SkippedChain {
    pub(crate) key_id: KeyId,
    /// Newest (highest index) first.
    pub(crate) keys: VecDeque<MessageKey>,
}

#[derive(Clone, Default)]
pub(crate) struct SkippedKeys {
    /// Newest chain first.
    pub(crate) chains: VecDeque<SkippedChain>,
}

impl SkippedKeys {
    pub(crate) fn contains_chain(&self, key_id: &KeyId) -> bool {
        self.chains.iter().any(|c| &c.key_id == key_id)
    }

    pub(crate) fn find(&self, key_id: &KeyId, counter: u32) -> Option<&MessageKey> {
        self.chains
            .iter()
            .find(|c| &c.key_id == key_id)?
            .keys
            .iter()
            .find(|k| k.index == counter)
    }

    pub(crate) fn remove(&mut self, key_id: &KeyId, counter: u32) {
        if let Some(chain) = self.chains.iter_mut().find(|c| &c.key_id == key_id) {
            chain.keys.retain(|k| k.index != counter);
        }
    }

    /// Starts a new chain (the caller makes sure it is not there yet), dropping the oldest chain
    /// when there are [`MAX_SKIPPED_CHAINS`].
    pub(crate) fn add_chain(&mut self, key_id: KeyId) {
        if self.chains.len() == MAX_SKIPPED_CHAINS {
            self.chains.pop_back();
        }
        self.chains.push_front(SkippedChain {
            key_id,
            keys: VecDeque::new(),
        });
    }

    /// Stores a key of the chain `key_id`, dropping that chain's oldest key when it holds
    /// [`MAX_SKIPPED_MESSAGES`]. A key of a chain no longer tracked is dropped.
    pub(crate) fn add_key(&mut self, key_id: &KeyId, key: MessageKey) {
        if let Some(chain) = self.chains.iter_mut().find(|c| &c.key_id == key_id) {
            chain.keys.push_front(key);
            if chain.keys.len() > MAX_SKIPPED_MESSAGES {
                chain.keys.pop_back();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chains.iter().map(|c| c.keys.len()).sum()
    }
}
