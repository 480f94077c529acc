//! The one error type of `fjord-lake`.

/// `Result` with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the lake. Every variant says which table or setting it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake's URL or options cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// A Delta table operation failed.
    #[error("lake table `{table}`: {source}")]
    Delta {
        /// The table.
        table: String,
        /// What delta-rs reported.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// Another writer committed something this one conflicts with; running again resolves it.
    #[error("lake table `{table}`: a concurrent job committed first ({detail}); run again")]
    Conflict {
        /// The table.
        table: String,
        /// The conflict.
        detail: String,
    },
    /// A local directory of the lake cannot be made.
    #[error("{path}: {reason}")]
    Input {
        /// The directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Wraps a delta-rs error for `table`, telling conflicts apart.
    pub fn delta(table: &str, source: deltalake::DeltaTableError) -> Self {
        use deltalake::DeltaTableError as D;
        use deltalake::kernel::transaction::TransactionError as T;
        let conflict = match &source {
            D::Transaction { source: t } => matches!(
                t,
                T::CommitConflict(_) | T::MaxCommitAttempts(_) | T::VersionAlreadyExists(_)
            ),
            D::VersionAlreadyExists(_) => true,
            _ => false,
        };
        if conflict {
            return Error::Conflict {
                table: table.into(),
                detail: source.to_string(),
            };
        }
        Error::Delta {
            table: table.into(),
            source,
        }
    }
}
