//! The ratchet key service `/pfs/v3/keys` (`sealkit_proto::pfs`, `docs/pfs.md`): publish the
//! caller's ratchet public keys, ask which of them the service still holds, pick another
//! identity's keys, delete the caller's keys.

use super::{ApiClient, Method};
use crate::error::{Error, Result};
use sealkit_proto::pfs::{
    codes, paths, PickOne, PublicKeySet, UploadKeys, ValidateKeys, ValidateKeysResponse,
};

impl ApiClient {
    /// `PUT /pfs/v3/keys`: records the card id, replaces the long-term key, adds one-time keys.
    pub(crate) async fn pfs_upload(&self, upload: &UploadKeys) -> Result<()> {
        self.send(Method::Put, paths::KEYS, Some(upload)).await?;
        Ok(())
    }

    /// `POST /pfs/v3/keys/actions/validate`: of the asked key ids, those the service still holds.
    pub(crate) async fn pfs_validate(&self, ids: &ValidateKeys) -> Result<ValidateKeysResponse> {
        self.send(Method::Post, paths::VALIDATE, Some(ids))
            .await?
            .json("pfs validate")
    }

    /// `POST /pfs/v3/keys/actions/pick-one`: `identity`'s keys with one of its one-time keys
    /// (used up by this call); `None` when the identity has published no keys (404, code
    /// 90008).
    pub(crate) async fn pfs_pick_one(&self, identity: &str) -> Result<Option<PublicKeySet>> {
        let request = PickOne {
            identity: identity.to_owned(),
        };
        match self
            .send(Method::Post, paths::PICK_ONE, Some(&request))
            .await
        {
            Ok(response) => response.json("pfs pick-one").map(Some),
            Err(Error::Api {
                status: 404,
                code: codes::KEYS_NOT_FOUND,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /pfs/v3/keys`: removes every key of the caller.
    pub(crate) async fn pfs_delete(&self) -> Result<()> {
        self.send::<()>(Method::Delete, paths::KEYS, None).await?;
        Ok(())
    }
}
