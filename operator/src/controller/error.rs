//! The reconciler's one error type.

/// Why a reconcile failed; `metric_label` is the `error` label of the failures counter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("{what} was changed by someone else; retrying with the new version")]
    Conflict { what: String },
    #[error("certificates: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Render(#[from] crate::render::RenderError),
    #[error("SightlineConfig has no name")]
    Unnamed,
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Error::Kube(error)
    }
}

impl Error {
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
