//! The reconciler's one error type.

/// Why a reconcile failed; `metric_label` is the `error` label of the failures counter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    /// A Kubernetes API call failed.
    Kube(#[source] kube::Error),
    #[error("{what} was changed by someone else; retrying with the new version")]
    /// Another writer changed an object between our read and write.
    Conflict {
        /// The object that changed.
        what: String,
    },
    #[error("certificates: {0}")]
    /// Certificates could not be read, issued or written.
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    /// A ConfigMap could not be rendered.
    Render(#[from] crate::render::RenderError),
    #[error("SightlineConfig has no name")]
    /// The resource has no `metadata.name`.
    Unnamed,
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Error::Kube(error)
    }
}

impl Error {
    /// The `error` label of `sightline_operator_reconcile_failures` for this error.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Conflict { .. } => "conflict",
            Error::Tls(_) => "tls",
            Error::Render(_) => "render",
            Error::Unnamed => "unnamed",
        }
    }
}

/// The reconciler's result, defaulting to its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
