//! Sealkit client: not built yet. See the project's open issues for its scope.
